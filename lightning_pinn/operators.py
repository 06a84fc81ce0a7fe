"""Differential operators for PDE residuals, built on reverse-mode autograd.

All first derivatives of an output come from one reverse pass (:func:`gradient`), so a
Burgers residual needs two gradient calls, not four.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, autograd, nn
from torch.func import grad, jvp, vmap

__all__ = ["gradient", "laplacian", "laplacian_fwd"]


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


def laplacian_fwd(
    fn: Callable[[Tensor], Tensor], x: Tensor, dims: Sequence[int] | None = None
) -> Tensor:
    """Laplacian in forward mode, all coordinate directions at once (no per-d reverse pass).

    Two exact paths, both differentiable with respect to the parameters ``fn`` closes over
    (so the Laplacian can sit inside a loss that is back-propagated):

    - ``fn`` a tanh MLP (an ``nn.Sequential`` of ``nn.Linear`` and ``nn.Tanh``, or a module
      whose ``net`` attribute is one, e.g. :class:`~lightning_pinn.networks.MLP`): the
      "forward Laplacian" (Li et al. 2023) propagates value, Jacobian ``[N, w, D]`` and
      Laplacian ``[N, w]`` through the layers in one forward pass;
    - any other point-wise ``fn``: for each direction ``e_j`` the second derivative
      ``e_jᵀ H e_j`` is read from ``jvp(∇u, e_j)`` (forward-over-reverse), the ``D``
      products batched with ``torch.func.vmap``, so the primal forward and reverse pass run
      once.

    Either way the cost grows with D only through batched tensor work, not D sequential
    reverse passes as in :func:`laplacian`.

    Args:
        fn: a point-wise function ``[N, d] -> [N, 1]`` (or ``[N]``), e.g. a network.
        x: ``[N, d]`` points (they need not require grad).
        dims: the D coordinates to sum over (all by default), e.g. the space dimensions of a
            space-time input.

    Returns:
        ``[N, 1]`` Laplacian ``Σ_{j ∈ dims} ∂²u/∂x_j²``.

    Example:
        >>> f = lambda x: (x**2).sum(1, keepdim=True)
        >>> laplacian_fwd(f, torch.zeros(3, 4)).squeeze(1)
        tensor([8., 8., 8.])
    """
    d = x.shape[1]
    dims = list(range(d)) if dims is None else list(dims)
    if not dims or any(not 0 <= j < d for j in dims):
        raise ValueError(f"dims must index the {d} coordinates of x, got {dims}")
    x = x.detach()
    layers = _tanh_mlp_layers(fn)
    if layers is not None:
        return _forward_laplacian(layers, x, dims)
    directions = torch.eye(d, dtype=x.dtype, device=x.device)[dims]  # (D, d)
    grad_u = grad(lambda y: fn(y).sum())  # point-wise fn: ∇ of the sum = per-point gradient

    def second(v: Tensor) -> Tensor:  # v: (d,) -> (N,) directional second derivative
        vv = v.expand_as(x)  # (N, d)
        hv = jvp(grad_u, (x,), (vv,))[1]  # (N, d) = H v per point
        return (hv * vv).sum(dim=1)

    return vmap(second)(directions).sum(dim=0).unsqueeze(1)  # (D, N) -> (N, 1)


def _tanh_mlp_layers(fn: object) -> list[nn.Module] | None:
    """The layers of a plain tanh MLP (Linear, Tanh, ..., Linear), else ``None``."""
    seq = fn if isinstance(fn, nn.Sequential) else getattr(fn, "net", None)
    if not isinstance(seq, nn.Sequential) or type(fn) not in (nn.Sequential, _mlp_type()):
        return None
    layers = list(seq)
    kinds = [nn.Linear if i % 2 == 0 else nn.Tanh for i in range(len(layers))]
    if len(layers) % 2 == 0 or any(type(m) is not k for m, k in zip(layers, kinds, strict=True)):
        return None
    return layers


def _mlp_type() -> type:
    from lightning_pinn.networks import MLP

    return MLP


def _forward_laplacian(layers: list[nn.Module], x: Tensor, dims: list[int]) -> Tensor:
    """Value, Jacobian and Laplacian pushed through ``Linear``/``Tanh`` layers together."""
    first = layers[0]
    z = first(x)  # (N, w)
    jac = first.weight[:, dims].T.unsqueeze(0)  # (1, D, w): the same for every point
    lap = torch.zeros_like(z)  # (N, w)
    jac_sq = first.weight[:, dims].pow(2).sum(dim=1)  # (w,)
    for i in range(1, len(layers), 2):
        t = torch.tanh(z)
        s1 = 1 - t * t  # tanh'
        lap = s1 * lap - 2 * t * s1 * jac_sq  # tanh'' = -2 tanh tanh'
        linear = layers[i + 1]
        z = linear(t)
        lap = lap @ linear.weight.T  # (N, w')
        if i + 2 < len(layers):  # the Jacobian is not needed after the last hidden layer
            jac = (s1.unsqueeze(1) * jac) @ linear.weight.T  # (N, D, w'): one GEMM
            jac_sq = jac.pow(2).sum(dim=1)  # (N, w')
    return lap  # the output layer is linear: Δ(Wh + b) = W Δh
