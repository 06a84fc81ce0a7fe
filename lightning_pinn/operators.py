"""Differential operators for PDE residuals, built on reverse-mode autograd.

All first derivatives of an output come from one reverse pass (:func:`gradient`), so a
Burgers residual needs two gradient calls, not four.
"""

from __future__ import annotations

from torch import Tensor, autograd

__all__ = ["gradient", "laplacian"]


def gradient(u: Tensor, x: Tensor) -> Tensor:
    """All first derivatives ``∂u/∂x_j`` of a scalar field in one reverse pass.

    Args:
        u: ``[N, 1]`` (or ``[N]``) values computed from ``x`` (point-wise).
        x: ``[N, d]`` points with ``requires_grad=True``.

    Returns:
        ``[N, d]`` derivatives, differentiable again (``create_graph=True``).
    """
    (g,) = autograd.grad(u.sum(), x, create_graph=True)
    return g


def laplacian(u: Tensor, x: Tensor, dims: list[int] | None = None) -> Tensor:
    """Sum of second derivatives over ``dims`` (all coordinates by default), ``[N, 1]``.

    Uses one reverse pass per coordinate; for high dimensions prefer the forward-mode
    routine of the ``poisson_nd`` problem.
    """
    du = gradient(u, x)
    dims = list(range(x.shape[1])) if dims is None else dims
    total = 0
    for j in dims:
        total = total + gradient(du[:, j : j + 1], x)[:, j : j + 1]
    return total
