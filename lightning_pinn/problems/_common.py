"""Small helpers shared by the problem modules: evaluation grids, samples, noisy data, the
plain and the causally weighted mean squared residual."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_pinn._per_loss import per_loss_adapter
from lightning_pinn.data import Box

__all__ = [
    "add_noise",
    "CausalHold",
    "causal_mse",
    "check_causal",
    "check_positive",
    "grid",
    "mse",
    "random_points",
    "shared_forward_losses",
]


def grid(lower: Sequence[float], upper: Sequence[float], counts: Sequence[int]) -> Tensor:
    """A tensor-product grid ``[prod(counts), len(counts)]`` (first coordinate slowest)."""
    axes = [torch.linspace(lo, hi, n) for lo, hi, n in zip(lower, upper, counts, strict=True)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def random_points(box: Box, n: int, seed: int) -> Tensor:
    """``n`` i.i.d. uniform points in ``box`` from a private generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return box.sample(n, gen, "uniform")


def add_noise(values: Tensor, noise: float, seed: int) -> Tensor:
    """``values + noise * std(values) * ε`` with ``ε ~ N(0, 1)`` drawn from ``seed``.

    The convention of Raissi et al. (2019): the noise level is relative to the standard
    deviation of the clean observations (per column).
    """
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(values.shape, generator=gen, dtype=torch.float64)
    clean = values.double()
    return clean + noise * clean.std(dim=0, keepdim=True) * eps


def mse(r: Tensor) -> Tensor:
    """Mean squared value of a residual."""
    return r.pow(2).mean()


def check_causal(eps: float, chunks: int, owner: str = "causal weighting") -> None:
    """Validate the causal-weighting options; raise naming the bad value.

    Raises:
        TypeError: ``eps`` not a real number or ``chunks`` not an int.
        ValueError: ``eps`` negative or not finite, or ``chunks < 1``.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"{owner}: causal_eps must be a number, got {eps!r}")
    if not (0.0 <= eps < float("inf")):
        raise ValueError(
            f"{owner}: causal_eps must be a finite number >= 0 (0 turns causal weighting off), "
            f"got {eps!r}"
        )
    if isinstance(chunks, bool) or not isinstance(chunks, int):
        raise TypeError(f"{owner}: causal_chunks must be an int, got {chunks!r}")
    if chunks < 1:
        raise ValueError(f"{owner}: causal_chunks must be >= 1, got {chunks!r}")


def causal_mse(
    residual: Tensor, t: Tensor, eps: float, chunks: int = 32, weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The causally weighted mean squared residual and its temporal weights.

    The N points are sorted by time and split into ``chunks`` consecutive groups of (nearly)
    equal size, M = ``chunks``. With ``L_i`` the mean squared residual of group i, the weights
    ``w_i = exp(-eps · Σ_{j<i} L_j)`` come from the detached ``L_i`` already computed (no extra
    backward pass, no graph), and the loss is ``(1/M) Σ_i w_i L_i``: a later time window
    counts only once the earlier ones are resolved. ``eps = 0`` returns the plain mean squared
    residual (bitwise) and weights of one.

    Wang, Sankaran & Perdikaris (2022), "Respecting causality is all you need for training
    physics-informed neural networks", arXiv:2203.07404.

    Args:
        residual: ``[N]`` or ``[N, m]`` PDE residual at the points.
        t: ``[N]`` (or ``[N, 1]``) time of each point.
        eps: causality parameter ε ``>= 0``.
        chunks: number of temporal chunks M, ``1 <= M <= N``.
        weights: ``[M]`` weights to use instead of computing them (``None``: computed). The
            L-BFGS phase holds them fixed over one call (:class:`CausalHold`), so that its line
            search sees one objective.

    Returns:
        ``(loss, weights)``: the scalar loss and the ``[M]`` weights (detached, non-increasing
        in time, ``weights[0] == 1``).

    Raises:
        ValueError: bad ``eps``/``chunks``, fewer points than chunks, or ``t`` not one time
            per point.

    Example:
        >>> r, t = torch.randn(256, 1), torch.rand(256)
        >>> loss, w = causal_mse(r, t, eps=1.0, chunks=16)
        >>> bool((w[1:] <= w[:-1]).all())
        True
    """
    check_causal(eps, chunks)
    n = residual.shape[0]
    times = t.detach().reshape(-1)
    if times.shape[0] != n:
        raise ValueError(f"causal_mse: t must hold one time per point ({n}), got {tuple(t.shape)}")
    if eps == 0:
        return mse(residual), torch.ones(chunks, dtype=residual.dtype, device=residual.device)
    if n < chunks:
        raise ValueError(
            f"causal_mse: {n} residual points cannot fill causal_chunks={chunks} chunks; "
            "lower causal_chunks or sample more residual points"
        )
    per_point = residual.reshape(n, -1).pow(2).mean(dim=1)  # (N,)
    order = torch.argsort(times)
    chunk_of = torch.arange(n, device=residual.device) * chunks // n  # (N,) sorted position -> i
    sums = per_point.new_zeros(chunks).index_add(0, chunk_of, per_point[order])  # (M,)
    counts = torch.bincount(chunk_of, minlength=chunks).to(per_point.dtype)  # (M,), all >= 1
    chunk_loss = sums / counts  # (M,)
    if weights is not None:
        if tuple(weights.shape) != (chunks,):
            raise ValueError(
                f"causal_mse: weights must have one value per chunk ({chunks}), got "
                f"{tuple(weights.shape)}"
            )
        weights = weights.detach().to(chunk_loss)
    else:
        with torch.no_grad():
            earlier = torch.cumsum(chunk_loss, 0)[:-1]  # (M-1,) Σ_{j<=i} L_j
            weights = torch.exp(-eps * torch.cat([earlier.new_zeros(1), earlier]))  # (M,)
    return (weights * chunk_loss).mean(), weights


class CausalHold:
    """Causal weights held fixed over the loss evaluations of one L-BFGS call.

    The causal weights are recomputed from the residual at every evaluation, and treated as
    constants by the gradient. For a first-order step that is Wang et al.'s rule, but a line
    search that evaluates the losses several times would see an objective whose value moves
    with weights its gradient ignores, and strong-Wolfe stalls (Burgers with ``causal_eps=1``
    stalled on its first L-BFGS call). Under a hold, the first evaluation of a call computes
    the weights of each causally weighted loss, in call order, and the later evaluations
    reuse them (:meth:`rewind` before each evaluation); the next call computes fresh ones.
    """

    def __init__(self) -> None:
        self.weights: list[Tensor] = []
        self.index = 0

    def rewind(self) -> None:
        """A new evaluation of the losses starts: the first causal loss takes slot 0."""
        self.index = 0

    def current(self) -> Tensor | None:
        """The held weights of the next causal loss (``None`` on the call's first evaluation)."""
        return self.weights[self.index] if self.index < len(self.weights) else None

    def advance(self, weights: Tensor) -> None:
        """Keep ``weights`` for this loss (first evaluation) and move to the next slot."""
        if self.index == len(self.weights):
            self.weights.append(weights.detach())
        self.index += 1


def check_positive(problem: str, **values: float) -> None:
    """Raise ``ValueError`` naming the first parameter that is not ``> 0``."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"{problem}: {key} must be > 0, got {value!r}")


def shared_forward_losses(
    module: Any, names: Sequence[str], compute: Callable[[], dict[str, Tensor]]
) -> dict[str, Tensor]:
    """Losses ``names`` that ``compute()`` derives from one shared forward, tagged.

    Computed once; under per-loss adapters (each loss through its own adapter) once per loss,
    inside its loss scope, keeping that loss's value. ``compute`` may evaluate the network
    untagged: the scope says which loss its forwards belong to.
    """
    if per_loss_adapter(module) is None:
        return compute()
    out = {}
    for name in names:
        with module.loss_scope(name):
            out[name] = compute()[name]
    return out
