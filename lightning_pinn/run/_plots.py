"""Prediction-vs-reference figures and the error field of a trained problem.

:func:`save_prediction` evaluates a trained module and its problem's reference on a plotting
grid and writes ``prediction.png`` and ``error_field.npz``:

- 1 input coordinate: line plots of prediction and reference, and ``|error|``;
- 2 coordinates (space-time or 2D space): heatmaps of prediction, reference and ``|error|``
  on the problem's evaluation grid (or a regular grid over its bounding box when the
  evaluation points are scattered);
- d > 2: the same heatmaps on a 2D slice through the first two coordinates, every other
  coordinate fixed at the centre of the evaluation points' bounding box.

One row per output field.

This is one of three drawing places, each next to the data it draws so imports flow one way:
the probe figure in :mod:`lightning_pinn.diagnostics` (tensors of one probe window; that layer
must not import the runs), this prediction figure (a trained module against its problem's
reference), and the regime map in :mod:`lightning_pinn.benchmark` (benchmark records). All
three draw on a ``matplotlib.figure.Figure`` (no pyplot state, no display backend) saved as PNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

__all__ = ["PredictionField", "plot_prediction", "prediction_field", "save_prediction"]

PREDICTION_FIGURE = "prediction.png"
ERROR_FIELD = "error_field.npz"


class PredictionField(dict):
    """Plotting data: ``points [N, d]``, ``prediction``/``reference``/``error`` ``[N, m]``,
    ``grid`` (the 2D grid shape or ``None``), ``axes`` (plotted coordinate indices), names."""


def _grid_shape(points: Tensor) -> tuple[int, int] | None:
    """``(n0, n1)`` when 2D ``points`` form a full tensor grid ordered with axis 1 fastest."""
    if points.shape[1] != 2:
        return None
    n0 = torch.unique(points[:, 0]).numel()
    n1 = torch.unique(points[:, 1]).numel()
    if n0 * n1 != points.shape[0]:
        return None
    grid = points.reshape(n0, n1, 2)
    if torch.allclose(grid[:, :1, 0].expand(n0, n1), grid[:, :, 0]):
        return (n0, n1)
    return None


def _plot_points(eval_points: Tensor, resolution: int) -> tuple[Tensor, tuple[int, ...] | None]:
    """The points to plot on and their grid shape (``None`` for 1D line plots)."""
    d = eval_points.shape[1]
    lo, hi = eval_points.min(dim=0).values, eval_points.max(dim=0).values
    if d == 1:
        return torch.linspace(float(lo[0]), float(hi[0]), 4 * resolution).unsqueeze(1), None
    if d == 2:
        shape = _grid_shape(eval_points)
        if shape is not None:
            return eval_points, shape
    a = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    b = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    aa, bb = torch.meshgrid(a, b, indexing="ij")
    pts = ((lo + hi) / 2).repeat(resolution * resolution, 1)  # (R*R, d): slice centre
    pts[:, 0], pts[:, 1] = aa.reshape(-1), bb.reshape(-1)
    return pts, (resolution, resolution)


@torch.no_grad()
def _evaluate(fn: Callable[[Tensor], Tensor], points: Tensor, batch: int = 8192) -> Tensor:
    return torch.cat([fn(points[i : i + batch]) for i in range(0, points.shape[0], batch)])


def prediction_field(
    module: nn.Module,
    reference: Callable[[Tensor], Tensor],
    eval_points: Tensor,
    *,
    resolution: int = 128,
) -> PredictionField:
    """Evaluate ``module`` and ``reference`` on the plotting points derived from ``eval_points``.

    Args:
        module: the trained network (``[N, d] -> [N, m]``); evaluated in eval mode, in its
            parameters' dtype (float64 after ``precision="64-true"``), returned as fp32.
        reference: the reference solution ``[N, d] -> [N, m]``.
        eval_points: the problem's evaluation points ``[N, d]``.
        resolution: grid points per axis when a grid has to be built.

    Returns:
        A :class:`PredictionField`.
    """
    points, shape = _plot_points(eval_points.detach().float().cpu(), resolution)
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    # the module's own dtype: float64 under Trainer(precision="64-true")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = module.training
    module.eval()
    try:
        pred = _evaluate(lambda x: module(x.to(device, dtype)).float().cpu(), points)
    finally:
        module.train(was_training)
    with torch.enable_grad():  # some references differentiate (autograd-based solutions)
        ref = torch.cat(
            [reference(points[i : i + 8192]).detach() for i in range(0, points.shape[0], 8192)]
        )
    ref = ref.float().reshape(pred.shape)
    return PredictionField(
        points=points.numpy(),
        prediction=pred.numpy(),
        reference=ref.numpy(),
        error=(pred - ref).abs().numpy(),
        grid=shape,
        axes=(0,) if shape is None else (0, 1),
    )


def plot_prediction(
    field: PredictionField,
    path: str | Path,
    *,
    coordinate_names: Sequence[str] = (),
    field_names: Sequence[str] = (),
    title: str | None = None,
) -> Path:
    """Draw prediction, reference and ``|error|`` (one row per output field) and save a PNG.

    Args:
        field: from :func:`prediction_field`.
        path: output PNG path.
        coordinate_names: names of the input coordinates (axis labels).
        field_names: names of the output fields (row labels).
        title: figure title.

    Returns:
        ``path``.
    """
    pts, pred, ref, err = field["points"], field["prediction"], field["reference"], field["error"]
    m = pred.shape[1]
    d = pts.shape[1]
    cnames = list(coordinate_names) or [f"x{j}" for j in range(d)]
    fnames = list(field_names) if len(field_names) == m else [f"u{j}" for j in range(m)]
    shape = field["grid"]
    fig = Figure(figsize=(13, 3.4 * m))
    axes = fig.subplots(m, 3, squeeze=False)
    for row in range(m):
        name = fnames[row]
        if shape is None:
            x = pts[:, 0]
            order = np.argsort(x)
            ax = axes[row, 0]
            ax.plot(x[order], ref[order, row], "k-", lw=2, label="reference")
            ax.plot(x[order], pred[order, row], "r--", lw=1.5, label="prediction")
            ax.set_xlabel(cnames[0])
            ax.set_title(name)
            ax.legend()
            axes[row, 1].plot(x[order], pred[order, row] - ref[order, row], "b-")
            axes[row, 1].set_title(f"{name}: prediction - reference")
            axes[row, 2].semilogy(x[order], err[order, row] + 1e-16, "m-")
            axes[row, 2].set_title(f"{name}: |error|")
            for ax in axes[row, 1:]:
                ax.set_xlabel(cnames[0])
            continue
        n0, n1 = shape
        a = pts[:, 0].reshape(n0, n1)
        b = pts[:, 1].reshape(n0, n1)
        # Time on the horizontal axis when the second coordinate is t (the usual picture).
        horizontal_t = d == 2 and cnames[1] == "t"
        extent_src = (b, a) if horizontal_t else (a, b)
        extent = [
            float(extent_src[0].min()),
            float(extent_src[0].max()),
            float(extent_src[1].min()),
            float(extent_src[1].max()),
        ]
        vmin, vmax = (
            float(min(pred[:, row].min(), ref[:, row].min())),
            float(max(pred[:, row].max(), ref[:, row].max())),
        )
        panels = [
            (pred[:, row], f"{name}: prediction", "viridis", (vmin, vmax)),
            (ref[:, row], f"{name}: reference", "viridis", (vmin, vmax)),
            (err[:, row], f"{name}: |error|", "magma", (None, None)),
        ]
        for col, (values, label, cmap, (lo, hi)) in enumerate(panels):
            img = values.reshape(n0, n1)
            img = img if horizontal_t else img.T
            ax = axes[row, col]
            im = ax.imshow(
                img, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=lo, vmax=hi
            )
            fig.colorbar(im, ax=ax)
            ax.set_title(label)
            ax.set_xlabel(cnames[1] if horizontal_t else cnames[0])
            ax.set_ylabel(cnames[0] if horizontal_t else cnames[1])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def save_prediction(
    module: nn.Module, problem: Any, directory: str | Path, *, resolution: int = 128
) -> dict[str, Path]:
    """Write ``prediction.png`` and ``error_field.npz`` for a trained problem module.

    Args:
        module: the trained module (e.g. a :class:`~lightning_pinn.problems.ProblemModule`).
        problem: its :class:`~lightning_pinn.problems.Problem` (``reference``,
            ``eval_points``, ``coordinate_names``, ``field_names``, ``input_dim``).
        directory: the run's log directory.
        resolution: grid points per axis for scattered or d > 2 evaluation points.

    Returns:
        ``{"figure": PNG path, "error_field": NPZ path}``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    field = prediction_field(
        module, problem.reference, problem.eval_points(), resolution=resolution
    )
    coords = list(getattr(problem, "coordinate_names", ()))
    if len(coords) != problem.input_dim:
        coords = [f"x{j}" for j in range(problem.input_dim)]
    d = problem.input_dim
    suffix = ""
    if d > 2:
        centre = field["points"][0, 2:]
        fixed = ", ".join(f"{c}={v:.3g}" for c, v in zip(coords[2:], centre, strict=True))
        suffix = (
            f" (slice {coords[0]}-{coords[1]}, {fixed})"
            if d <= 6
            else (f" (slice {coords[0]}-{coords[1]}, other coordinates at the centre)")
        )
    ref_norm = float(np.linalg.norm(field["reference"])) or 1.0
    rel = float(np.linalg.norm(field["prediction"] - field["reference"])) / ref_norm
    title = f"{getattr(problem, 'name', '')}: prediction vs reference{suffix}, rel L2 {rel:.3e}"
    figure = plot_prediction(
        field,
        directory / PREDICTION_FIGURE,
        coordinate_names=coords,
        field_names=list(getattr(problem, "field_names", ())),
        title=title,
    )
    npz = directory / ERROR_FIELD
    np.savez_compressed(
        npz,
        points=field["points"],
        prediction=field["prediction"],
        reference=field["reference"],
        error=field["error"],
        grid=np.asarray(field["grid"] or (), dtype=np.int64),
        coordinate_names=np.asarray(coords),
        field_names=np.asarray(list(getattr(problem, "field_names", ()))),
    )
    return {"figure": figure, "error_field": npz}
