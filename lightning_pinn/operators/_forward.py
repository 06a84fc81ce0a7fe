"""Function-level operators: derivatives of ``fn`` at ``x`` by the cheapest exact route.

:func:`jet` and :func:`laplacian_fwd` take the network itself, not its output, so they can
choose how to differentiate it: the forward-mode jet of :mod:`._jet` when the trunk's layers
are known (plain or adapter-wrapped MLPs, any supported activation), else reverse mode
(:func:`jet`) or ``vmap``-batched forward-over-reverse products (:func:`laplacian_fwd`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.func import grad, jvp, vmap

from lightning_pinn.operators._jet import jet_layers, propagate
from lightning_pinn.operators._reverse import gradient

__all__ = ["Jet", "jet", "laplacian_fwd"]


@dataclasses.dataclass(frozen=True)
class Jet:
    """Value and derivatives of an ``m``-output field at ``N`` points (see :func:`jet`).

    Attributes:
        value: ``[N, m]``.
        first: ``[N, m, D]`` first derivatives along ``directions``.
        second: ``[N, m, P]`` second derivatives for ``pairs`` (``P = 0`` if none asked).
        laplacian: ``[N, m]`` sum of the asked Laplacian dims, or ``None``.
        directions: the D coordinates of ``first``.
        pairs: the P coordinate pairs ``(i, j)`` of ``second``.
    """

    value: Tensor
    first: Tensor
    second: Tensor
    laplacian: Tensor | None
    directions: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]

    def d(self, i: int) -> Tensor:
        """``∂u/∂x_i`` ``[N, m]``."""
        return self.first[:, :, self.directions.index(i)]

    def d2(self, i: int, j: int) -> Tensor:
        """``∂²u/∂x_i∂x_j`` ``[N, m]`` (``(i, j)`` or ``(j, i)`` must have been asked)."""
        key = (i, j) if (i, j) in self.pairs else (j, i)
        return self.second[:, :, self.pairs.index(key)]


def _check(x: Tensor, dims: Sequence[int], what: str) -> list[int]:
    d = x.shape[1]
    dims = [int(j) for j in dims]
    if any(not 0 <= j < d for j in dims):
        raise ValueError(f"{what} must index the {d} coordinates of x, got {dims}")
    return dims


def jet(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    first: Sequence[int] | None = None,
    second: Sequence[tuple[int, int]] = (),
    laplacian: Sequence[int] | None = None,
) -> Jet:
    """Value, first derivatives, chosen second derivatives and a Laplacian of ``fn`` at ``x``.

    Fast path: a trunk :func:`~lightning_pinn.operators._jet.jet_layers` understands (an
    ``nn.Sequential``/``MLP`` of ``nn.Linear`` and tanh/sigmoid/SiLU layers, also wrapped in
    :class:`~lightning_pinn.PerLossAdapter`) gets everything in one forward-mode pass. Any
    other point-wise ``fn`` is differentiated in reverse mode: one pass per output component
    for all first derivatives, one more per distinct ``i`` among the second-order terms.
    Either way the results are differentiable in the parameters ``fn`` closes over.

    Args:
        fn: point-wise ``[N, d] -> [N, m]``, e.g. ``module.model``.
        x: ``[N, d]`` points (used detached: derivatives in the inputs are not tracked).
        first: coordinates of the first derivatives (all ``d`` by default).
        second: pairs ``(i, j)`` of second derivatives, e.g. ``[(0, 0), (0, 1)]``.
        laplacian: coordinates summed into ``Jet.laplacian`` (none by default).

    Returns:
        A :class:`Jet`.

    Raises:
        ValueError: a coordinate outside ``[0, d)``.

    Example:
        >>> f = lambda x: x[:, :1] ** 2 * x[:, 1:]
        >>> out = jet(f, torch.ones(3, 2), second=[(0, 0), (0, 1)])
        >>> out.d(0).squeeze(1).tolist(), out.d2(0, 1).squeeze(1).tolist()
        ([2.0, 2.0, 2.0], [2.0, 2.0, 2.0])
    """
    firsts = _check(x, range(x.shape[1]) if first is None else first, "first")
    pairs = [(int(i), int(j)) for i, j in second]
    _check(x, [k for p in pairs for k in p], "second")
    lap = None if laplacian is None else _check(x, laplacian, "laplacian")
    if lap is not None and not lap:
        raise ValueError("laplacian must name at least one coordinate")
    directions = sorted(set(firsts) | {k for p in pairs for k in p} | set(lap or ()))
    x = x.detach()
    layers = jet_layers(fn)
    if layers is not None:
        value, d1, d2 = propagate(layers, x, directions, pairs, lap)  # d2: (P [+ 1], N, m)
        if d2 is None:
            d2 = value.new_zeros((0, *value.shape))
        second_t = d2[: len(pairs)].permute(1, 2, 0)  # (N, m, P)
        lap_t = d2[-1] if lap is not None else None
        return Jet(value, d1.permute(1, 2, 0), second_t, lap_t, tuple(directions), tuple(pairs))
    return _reverse_jet(fn, x, directions, pairs, lap)


def _reverse_jet(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    directions: list[int],
    pairs: list[tuple[int, int]],
    lap: list[int] | None,
) -> Jet:
    xg = x.requires_grad_(True)
    value = fn(xg)  # (N, m)
    grads = [gradient(value[:, c : c + 1], xg) for c in range(value.shape[1])]  # m x (N, d)
    rows: dict[tuple[int, int], Tensor] = {}  # (c, i) -> ∇ ∂u_c/∂x_i  (N, d)
    needed = {i for i, _ in pairs} | set(lap or ())
    for c, g in enumerate(grads):
        for i in sorted(needed):
            rows[c, i] = gradient(g[:, i : i + 1], xg)
    m = value.shape[1]
    first = torch.stack([g[:, directions] for g in grads], dim=1)  # (N, m, D)
    if pairs:
        second = torch.stack(
            [torch.cat([rows[c, i][:, j : j + 1] for i, j in pairs], dim=1) for c in range(m)],
            dim=1,
        )  # (N, m, P)
    else:
        second = value.new_zeros((*value.shape, 0))
    lap_t = None
    if lap is not None:
        lap_t = torch.cat(
            [sum(rows[c, j][:, j : j + 1] for j in lap) for c in range(m)], dim=1
        )  # (N, m)
    return Jet(value, first, second, lap_t, tuple(directions), tuple(pairs))


def laplacian_fwd(
    fn: Callable[[Tensor], Tensor], x: Tensor, dims: Sequence[int] | None = None
) -> Tensor:
    """Laplacian in forward mode, all coordinate directions at once (no per-d reverse pass).

    Two exact paths, both differentiable with respect to the parameters ``fn`` closes over
    (so the Laplacian can sit inside a loss that is back-propagated):

    - ``fn`` a trunk the jet understands (``nn.Sequential``/``MLP`` of ``nn.Linear`` and
      tanh/sigmoid/SiLU layers, also wrapped in :class:`~lightning_pinn.PerLossAdapter`):
      the "forward Laplacian" (Li et al. 2023) propagates value, Jacobian ``[D, N, w]`` and
      Laplacian ``[N, w]`` through the layers in one forward pass;
    - any other point-wise ``fn``: for each direction ``e_j`` the second derivative
      ``e_jᵀ H e_j`` is read from ``jvp(∇u, e_j)`` (forward-over-reverse), the ``D``
      products batched with ``torch.func.vmap``, so the primal forward and reverse pass run
      once.

    Args:
        fn: a point-wise function ``[N, d] -> [N, 1]`` (or ``[N]``), e.g. a network.
        x: ``[N, d]`` points (they need not require grad).
        dims: the D coordinates to sum over (all by default), e.g. the space dimensions of a
            space-time input.

    Returns:
        ``[N, 1]`` Laplacian ``Σ_{j ∈ dims} ∂²u/∂x_j²``.

    Raises:
        ValueError: ``dims`` empty or outside ``[0, d)``.

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
    layers = jet_layers(fn)
    if layers is not None:
        _, _, lap = propagate(layers, x, sorted(set(dims)), [], laplacian=dims)
        return lap[0]  # (N, 1)
    directions = torch.eye(d, dtype=x.dtype, device=x.device)[dims]  # (D, d)
    grad_u = grad(lambda y: fn(y).sum())  # point-wise fn: ∇ of the sum = per-point gradient

    def second(v: Tensor) -> Tensor:  # v: (d,) -> (N,) directional second derivative
        vv = v.expand_as(x)  # (N, d)
        hv = jvp(grad_u, (x,), (vv,))[1]  # (N, d) = H v per point
        return (hv * vv).sum(dim=1)

    return vmap(second)(directions).sum(dim=0).unsqueeze(1)  # (D, N) -> (N, 1)
