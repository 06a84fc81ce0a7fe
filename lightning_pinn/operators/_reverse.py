"""Reverse-mode differential operators on tensors ``u = f(x)`` (any point-wise network).

Every result keeps its graph (``create_graph=True``), so it can sit inside a loss whose
gradient with respect to the network parameters is taken afterwards (the K per-loss passes
of :class:`~lightning_pinn.PINNModule`). All first derivatives of one output component come
from a single reverse pass; a second derivative ``∂²u/∂x_i∂x_j`` is one more reverse pass over
the column ``∂u/∂x_i``, which also yields every ``∂²u/∂x_i∂x_k`` at no extra cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, autograd

__all__ = ["divergence", "gradient", "hessian_diag", "jacobian", "laplacian", "mixed"]


def gradient(u: Tensor, x: Tensor) -> Tensor:
    """All first derivatives ``∂u/∂x_j`` of a scalar field in one reverse pass.

    Args:
        u: ``[N, 1]`` (or ``[N]``) values computed from ``x`` (point-wise).
        x: ``[N, d]`` points with ``requires_grad=True``.

    Returns:
        ``[N, d]`` derivatives, differentiable again (``create_graph=True``).

    Example:
        >>> x = torch.rand(4, 2, requires_grad=True)
        >>> gradient((x**2).sum(1, keepdim=True), x).shape
        torch.Size([4, 2])
    """
    (g,) = autograd.grad(u.sum(), x, create_graph=True)
    return g


def jacobian(u: Tensor, x: Tensor) -> Tensor:
    """All first derivatives ``∂u_c/∂x_j`` of an ``m``-component field, one pass per component.

    Args:
        u: ``[N, m]`` values computed point-wise from ``x``.
        x: ``[N, d]`` points with ``requires_grad=True``.

    Returns:
        ``[N, m, d]`` derivatives (row ``c`` is :func:`gradient` of ``u[:, c]``).

    Raises:
        ValueError: ``u`` is not ``[N, m]``.
    """
    if u.ndim != 2 or u.shape[0] != x.shape[0]:
        raise ValueError(f"u must be [N, m] with N = {x.shape[0]}, got {tuple(u.shape)}")
    return torch.stack([gradient(u[:, c : c + 1], x) for c in range(u.shape[1])], dim=1)


def _first(u: Tensor, x: Tensor, grad: Tensor | None) -> Tensor:
    return gradient(u, x) if grad is None else grad


def hessian_diag(
    u: Tensor, x: Tensor, dims: Sequence[int] | None = None, grad: Tensor | None = None
) -> Tensor:
    """Diagonal second derivatives ``∂²u/∂x_j²`` for ``j`` in ``dims``, one pass per dim.

    Args:
        u: ``[N, 1]`` scalar field computed from ``x``.
        x: ``[N, d]`` points with ``requires_grad=True``.
        dims: the coordinates (all by default).
        grad: ``[N, d]`` the already computed :func:`gradient` of ``u`` (saves a pass).

    Returns:
        ``[N, len(dims)]`` second derivatives.
    """
    du = _first(u, x, grad)
    dims = range(x.shape[1]) if dims is None else dims
    return torch.cat([gradient(du[:, j : j + 1], x)[:, j : j + 1] for j in dims], dim=1)


def mixed(u: Tensor, x: Tensor, i: int, j: int, grad: Tensor | None = None) -> Tensor:
    """The second derivative ``∂²u/∂x_i∂x_j`` ``[N, 1]`` (``grad`` as in :func:`hessian_diag`)."""
    du = _first(u, x, grad)
    return gradient(du[:, i : i + 1], x)[:, j : j + 1]


def divergence(v: Tensor, x: Tensor, dims: Sequence[int] | None = None) -> Tensor:
    """``Σ_k ∂v_k/∂x_{dims[k]}`` of a vector field ``v`` ``[N, D]``, one pass per component.

    Args:
        v: ``[N, D]`` field computed from ``x`` (e.g. a flux ``a ∇u``).
        x: ``[N, d]`` points with ``requires_grad=True``.
        dims: the ``D`` coordinates paired with the columns of ``v`` (``0..D-1`` by default).

    Returns:
        ``[N, 1]`` divergence.

    Raises:
        ValueError: ``dims`` and the columns of ``v`` differ in number.
    """
    dims = list(range(v.shape[1])) if dims is None else list(dims)
    if len(dims) != v.shape[1]:
        raise ValueError(f"dims {dims} must name one coordinate per column of v {tuple(v.shape)}")
    total = gradient(v[:, :1], x)[:, dims[0] : dims[0] + 1]
    for k, j in enumerate(dims[1:], start=1):
        total = total + gradient(v[:, k : k + 1], x)[:, j : j + 1]
    return total


def laplacian(
    u: Tensor, x: Tensor, dims: Sequence[int] | None = None, grad: Tensor | None = None
) -> Tensor:
    """Sum of second derivatives over ``dims`` (all coordinates by default), ``[N, 1]``.

    Uses one reverse pass per coordinate (plus one for the gradient unless ``grad`` is
    given); for many coordinates prefer :func:`~lightning_pinn.operators.laplacian_fwd`.
    """
    du = _first(u, x, grad)
    dims = list(range(x.shape[1])) if dims is None else list(dims)
    return divergence(du[:, dims], x, dims)
