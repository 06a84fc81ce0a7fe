"""Figure of the probe statistics (a ``matplotlib.figure.Figure``: no display, no pyplot state).

One of three drawing places, each next to the data it draws so that imports keep flowing one
way: this one draws the tensors of one probe window and sits in the lowest layer (it must not
import runs or benchmarks); :mod:`lightning_pinn.run` draws a trained module against its
problem's reference; :mod:`lightning_pinn.benchmark` draws the regime map of benchmark records.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from lightning_pinn.diagnostics._statistics import DEFAULT_FLOOR, imbalance

__all__ = ["plot_probe"]


def plot_probe(
    cosines: Tensor,
    norms: Tensor,
    finite: Tensor | None = None,
    *,
    pair_names: Sequence[str],
    loss_names: Sequence[str],
    tau_dir: float = 0.5,
    tau_mag: float = 1.0,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Plot pairwise cosines, per-loss gradient norms and the imbalance over the probe.

    Panels: (1) cosine of each pair per step with the zero line, the start of the late half
    and the ``tau_dir`` rule as text; (2) per-loss norms on a log scale with a band of factor
    ``10**tau_mag`` above the smallest median norm (norms above the band are imbalanced);
    (3) the imbalance ``I(t)`` with the ``tau_mag`` line and its median. Non-finite steps are
    left as gaps.

    Args:
        cosines: ``[T, npairs]`` pairwise cosines.
        norms: ``[T, K]`` per-loss gradient norms.
        finite: ``[T]`` bool mask of the steps to draw (default all).
        pair_names: ``npairs`` labels.
        loss_names: ``K`` labels.
        tau_dir: conflict-rate threshold.
        tau_mag: imbalance threshold (decades).
        title: figure title.
        path: if given, save the figure there as PNG.

    Returns:
        The matplotlib ``Figure`` (not attached to pyplot; close it by dropping it).
    """
    cos = cosines.detach().float().cpu()
    nrm = norms.detach().float().cpu()
    t = cos.shape[0]
    mask = torch.ones(t, dtype=torch.bool) if finite is None else finite.detach().cpu().bool()
    cos = torch.where(mask[:, None], cos, torch.full_like(cos, float("nan")))
    nrm = torch.where(mask[:, None], nrm, torch.full_like(nrm, float("nan")))
    steps = torch.arange(1, t + 1).numpy()

    fig = Figure(figsize=(8, 9), layout="constrained")
    ax_cos, ax_norm, ax_imb = fig.subplots(3, 1, sharex=True)

    for p, label in enumerate(pair_names):
        ax_cos.plot(steps, cos[:, p].numpy(), lw=0.8, label=label)
    ax_cos.axhline(0.0, color="black", lw=0.8)
    ax_cos.axvline(t // 2 + 0.5, color="grey", ls=":", lw=0.8)
    ax_cos.set_ylim(-1.05, 1.05)
    ax_cos.set_ylabel("pairwise cosine")
    ax_cos.text(
        0.01,
        0.95,
        f"directional if late-half share of cos < 0 >= tau_dir = {tau_dir:g} and late mean cos < 0",
        transform=ax_cos.transAxes,
        fontsize=8,
        color="dimgrey",
        va="top",
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
    )
    ax_cos.legend(fontsize=8, loc="upper right")

    for k, label in enumerate(loss_names):
        ax_norm.plot(steps, nrm[:, k].clamp_min(DEFAULT_FLOOR).numpy(), lw=0.8, label=label)
    ax_norm.set_yscale("log")
    kept = nrm[mask]
    if kept.shape[0]:
        base = float(kept.median(dim=0).values.clamp_min(DEFAULT_FLOOR).min())
        ax_norm.axhspan(
            base,
            base * 10**tau_mag,
            color="tab:green",
            alpha=0.12,
            label=f"factor 10^tau_mag = {10**tau_mag:.3g}",
        )
    ax_norm.set_ylabel("gradient norm ‖g_k‖")
    ax_norm.legend(fontsize=8, loc="upper right")

    imb = imbalance(nrm.nan_to_num(nan=1.0))
    imb = torch.where(mask, imb, torch.full_like(imb, float("nan")))
    ax_imb.plot(steps, imb.numpy(), lw=0.8, color="tab:purple", label="imbalance I(t)")
    ax_imb.axhline(tau_mag, color="tab:red", ls="--", lw=0.8, label=f"tau_mag = {tau_mag:g}")
    if kept.shape[0]:
        ax_imb.axhline(
            float(imb[mask].median()), color="tab:purple", ls=":", lw=0.8, label="median"
        )
    ax_imb.set_ylim(bottom=0.0)
    ax_imb.set_ylabel("log10(max n / min n)")
    ax_imb.set_xlabel("probe step")
    ax_imb.legend(fontsize=8, loc="upper right")
    fig.suptitle(title or f"Gradient conflict probe ({t} steps)")
    if path is not None:
        fig.savefig(Path(path), format="png", dpi=100)
    return fig
