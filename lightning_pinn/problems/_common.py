"""Small helpers shared by the problem modules: evaluation grids, samples, noisy data."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_pinn.data import Box

__all__ = ["add_noise", "check_positive", "grid", "mse", "random_points"]


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


def check_positive(problem: str, **values: float) -> None:
    """Raise ``ValueError`` naming the first parameter that is not ``> 0``."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"{problem}: {key} must be > 0, got {value!r}")
