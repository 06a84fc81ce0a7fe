"""Sampling regions and point sets: where collocation points come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "Box",
    "BoxBoundary",
    "PointSet",
    "Region",
    "SamplingMethod",
    "check_batch",
    "sample_unit",
]

SamplingMethod = Literal["uniform", "lhs", "sobol"]
_METHODS = ("uniform", "lhs", "sobol")


def sample_unit(n: int, dim: int, generator: torch.Generator, method: SamplingMethod) -> Tensor:
    """``n`` points in the unit cube ``[0, 1]^dim``.

    Args:
        n: number of points.
        dim: dimension.
        generator: seeded CPU generator (the only source of randomness).
        method: ``"uniform"`` (i.i.d.), ``"lhs"`` (Latin hypercube) or ``"sobol"``
            (scrambled Sobol, seeded from ``generator``).

    Returns:
        ``[n, dim]`` float32 tensor.
    """
    if method == "uniform":
        return torch.rand(n, dim, generator=generator)
    if method == "lhs":
        strata = torch.argsort(torch.rand(dim, n, generator=generator), dim=1).T  # (n, dim)
        return (strata + torch.rand(n, dim, generator=generator)) / n
    if method == "sobol":
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed)
        return engine.draw(n).float()
    raise ValueError(f"unknown sampling method {method!r}; valid: {', '.join(_METHODS)}")


@runtime_checkable
class Region(Protocol):
    """Anything that draws points: ``sample(n, generator, method) -> [n, dim]``."""

    dim: int

    def sample(self, n: int, generator: torch.Generator, method: SamplingMethod) -> Tensor: ...


def _as_bounds(lower: Sequence[float], upper: Sequence[float]) -> tuple[Tensor, Tensor]:
    lo = torch.as_tensor(lower, dtype=torch.float32).reshape(-1)
    hi = torch.as_tensor(upper, dtype=torch.float32).reshape(-1)
    if lo.shape != hi.shape:
        raise ValueError(f"lower and upper must have the same length, got {lower} and {upper}")
    if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise ValueError(f"the bounds must be finite numbers, got {lower} and {upper}")
    if lo.numel() == 0:
        raise ValueError("a box needs at least one dimension, got lower=() and upper=()")
    if bool((hi < lo).any()):
        raise ValueError(f"upper must be >= lower in every dimension, got {lower} and {upper}")
    return lo, hi


@dataclass(frozen=True)
class Box:
    """An axis-aligned box ``[lower, upper]``; a dimension with ``lower == upper`` is fixed
    (e.g. the initial slice ``t = 0``)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "lower", tuple(float(v) for v in self.lower))
        object.__setattr__(self, "upper", tuple(float(v) for v in self.upper))
        _as_bounds(self.lower, self.upper)

    @property
    def dim(self) -> int:
        return len(self.lower)

    def sample(self, n: int, generator: torch.Generator, method: SamplingMethod) -> Tensor:
        lo, hi = _as_bounds(self.lower, self.upper)
        return lo + (hi - lo) * sample_unit(n, self.dim, generator, method)


@dataclass(frozen=True)
class BoxBoundary:
    """The faces of a box orthogonal to the coordinates ``dims`` (both sides of each).

    Points are spread evenly over the ``2 * len(dims)`` faces (face chosen at random per
    point), and uniformly within a face.
    """

    box: Box
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.dims or any(not 0 <= d < self.box.dim for d in self.dims):
            raise ValueError(
                f"dims must index coordinates of a {self.box.dim}-D box, got {self.dims}"
            )

    @property
    def dim(self) -> int:
        return self.box.dim

    def sample(self, n: int, generator: torch.Generator, method: SamplingMethod) -> Tensor:
        pts = self.box.sample(n, generator, method)
        face = torch.randint(0, 2 * len(self.dims), (n,), generator=generator)
        lo, hi = _as_bounds(self.box.lower, self.box.upper)
        for j, d in enumerate(self.dims):
            pts[face == 2 * j, d] = lo[d]
            pts[face == 2 * j + 1, d] = hi[d]
        return pts


@dataclass(frozen=True)
class PointSet:
    """``n`` points drawn from ``region`` every step."""

    region: Region
    n: int

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"a point set needs an integer n >= 1 points, got {self.n!r}")


def check_batch(batch: Mapping[str, Tensor]) -> None:
    """Check that every point set of a training batch holds at least one point.

    The mean over an empty set is NaN: without this check an empty set shows up later as a
    non-finite loss, far from its cause.

    Args:
        batch: ``{set name: [n, d] points}``.

    Raises:
        ValueError: a set with no points (named, with its shape).
    """
    empty = {name: tuple(pts.shape) for name, pts in batch.items() if pts.shape[0] == 0}
    if empty:
        raise ValueError(
            f"empty point set(s) {sorted(empty)} in the training batch (shapes "
            f"{[empty[k] for k in sorted(empty)]}); every set needs at least one point: check "
            "the data module's point counts and regions"
        )
