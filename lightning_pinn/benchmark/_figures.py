"""The regime-map figure of a benchmark.

Why this is not in :mod:`lightning_pinn.run` or :mod:`lightning_pinn.diagnostics` (the other
two places that draw): each figure lives next to the data it draws, so imports keep flowing one
way. The probe figure (``diagnostics``) draws tensors of one probe window and must not import
anything above the diagnostics; the prediction figure (``run``) draws a trained module against
its problem's reference; this one draws benchmark records. All three use the same mechanics:
a ``matplotlib.figure.Figure`` (no pyplot state, no display backend needed), saved as PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from lightning_pinn.benchmark._selection import TOLERANCE, selection_accuracy
from lightning_pinn.diagnostics import DEFAULT_TAU_DIR, DEFAULT_TAU_MAG

__all__ = ["plot_regime_map"]

_COLORS = {"none": "tab:gray", "reweight": "tab:blue", "adapters": "tab:red"}
_MARKERS = {
    "none": ("o", "tab:gray"),
    "reweight": ("s", "tab:blue"),
    "adapters": ("^", "tab:red"),
    "surgery": ("D", "tab:green"),
    "auto": ("x", "k"),
    "auto-guarded": ("+", "tab:purple"),
    "auto-escalate": ("*", "tab:orange"),
}


def plot_regime_map(
    records: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    tau_dir: float = DEFAULT_TAU_DIR,
    tau_mag: float = DEFAULT_TAU_MAG,
) -> Figure:
    """Left: scatter the configurations, late conflict rate vs median imbalance, coloured by
    the winning strategy, with a black edge where the diagnosis was within the tolerance.
    Right: per configuration, the median rel L2 of every strategy that ran, ``auto`` and
    ``auto-guarded`` included (log scale).

    Args:
        records: benchmark records (``results.jsonl``).
        path: output PNG path.
        tau_dir: threshold line drawn on the conflict-rate axis.
        tau_mag: threshold line drawn on the imbalance axis.

    Returns:
        The figure (not attached to pyplot).
    """
    rows = selection_accuracy(records)["rows"]
    fig = Figure(figsize=(13, 4.5 + 0.12 * len(rows)), layout="tight")
    ax, errors = fig.subplots(1, 2, width_ratios=(1, 1.2))
    for s, c in _COLORS.items():
        pts = [r for r in rows if r["best"] == s]
        ax.scatter(
            [r["late_conflict_rate"] for r in pts],
            [r["median_imbalance"] for r in pts],
            c=c,
            label=f"best: {s}",
            edgecolors=["k" if r["hit"] else "none" for r in pts],
        )
        for r in pts:
            ax.annotate(r["config"], (r["late_conflict_rate"], r["median_imbalance"]), fontsize=7)
    ax.axvline(tau_dir, ls="--", c="k", lw=0.8)
    ax.axhline(tau_mag, ls=":", c="k", lw=0.8)
    ax.set_xlabel("max late-half conflict rate over pairs")
    ax.set_ylabel("median imbalance (decades)")
    ax.set_title(f"Regime map (black edge: diagnosis within {TOLERANCE:g}× of best)")
    ax.legend(fontsize=8)
    for name, (marker, color) in _MARKERS.items():
        pts = [(i, r["all_medians"][name]) for i, r in enumerate(rows) if name in r["all_medians"]]
        if pts:
            errors.scatter(
                [v for _, v in pts], [i for i, _ in pts], marker=marker, c=color, label=name
            )
    errors.set_yticks(range(len(rows)), [r["config"] for r in rows], fontsize=7)
    errors.invert_yaxis()
    errors.set_xscale("log")
    errors.set_xlabel("median rel L2 over seeds")
    errors.set_title("Error of every strategy per configuration")
    errors.grid(axis="x", alpha=0.3)
    errors.legend(fontsize=7, loc="best")
    fig.savefig(Path(path), dpi=120)
    return fig
