"""Collocation data: a fresh batch of points per loss every step, reproducible and resumable.

Batch i of a run is a pure function of ``(seed, rank, i)``, so a run resumed from a checkpoint
sees exactly the points the uninterrupted run would have seen, and every DDP rank draws its
own points. With ``resample=False`` every step sees batch 0: fixed collocation points.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

__all__ = [
    "Box",
    "BoxBoundary",
    "CollocationDataModule",
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
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"a point set needs n >= 1 points, got {self.n!r}")


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


def _batch_seed(seed: int, rank: int, index: int) -> int:
    # A simple bijective mix of (seed, rank, index) into a 63-bit seed.
    return (seed * 1_000_003 + rank * 7_919 + index * 2_654_435_761) % (2**63 - 1)


class _CollocationStream(IterableDataset):
    """Infinite stream of point batches; batch i depends only on ``(seed, rank, i)``.

    With ``resample=False`` batch 0 is drawn once and every step receives a copy of it.
    """

    def __init__(
        self,
        sets: Mapping[str, PointSet],
        seed: int,
        method: SamplingMethod,
        rank: int,
        start: int,
        resample: bool = True,
    ) -> None:
        self.sets = dict(sets)
        self.seed = seed
        self.method = method
        self.rank = rank
        self.start = start
        self.resample = resample
        self._fixed: dict[str, Tensor] | None = None
        self.next_index = start  # the index the iterator draws next (moved by a rewind)
        self.drawn: deque[int] = deque()  # indices drawn and not yet handed to the model
        self.stale = 0  # batches drawn before the last rewind, still to be handed on

    def _draw(self, index: int) -> dict[str, Tensor]:
        gen = torch.Generator().manual_seed(_batch_seed(self.seed, self.rank, index))
        batch = {name: ps.region.sample(ps.n, gen, self.method) for name, ps in self.sets.items()}
        check_batch(batch)  # a region that returns no points
        return batch

    def batch(self, index: int) -> dict[str, Tensor]:
        if self.resample:
            return self._draw(index)
        if self._fixed is None:
            self._fixed = self._draw(0)
        # A copy per step: losses may mark the points requires_grad_ in place.
        return {name: pts.clone() for name, pts in self._fixed.items()}

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        self.next_index = self.start
        self.drawn.clear()
        self.stale = 0
        while True:
            index = self.next_index
            self.next_index += 1
            self.drawn.append(index)
            yield self.batch(index)


class _Slices(Dataset):
    """Evaluation data as whole ``[B, d]`` slices: item i is ``(points, values)`` of batch i.

    Served with ``DataLoader(batch_size=None)``, a validation batch is one slice instead of B
    indexed points stacked by the collate function (~0.35 s per pass, now a few ms).
    """

    def __init__(self, points: Tensor, values: Tensor, batch_size: int) -> None:
        self.points = points
        self.values = values
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-self.points.shape[0] // self.batch_size)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        s = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.points[s], self.values[s]


class CollocationDataModule(L.LightningDataModule):
    """Collocation points for each loss, resampled every step (or fixed), plus an evaluation set.

    Training batches are dicts ``{set name: [n, d] points}``; one Lightning epoch is infinite,
    so the step budget is set with ``Trainer(max_steps=...)`` and validation with
    ``val_check_interval=<steps>``. Validation batches are ``(points, reference)`` pairs.

    Args:
        sets: point sets by name (usually the loss names), each a :class:`PointSet` or a
            ``(region, n)`` pair.
        seed: base seed; batch i on rank r is drawn from ``(seed, r, i)``.
        method: ``"uniform"`` (default), ``"lhs"`` or ``"sobol"``.
        resample: ``True`` (default) draws fresh points every step; ``False`` draws batch 0
            once (from ``(seed, rank, 0)``) and trains on those fixed points every step.
        eval_points: fixed ``[N, d]`` evaluation points for ``val/rel_l2``.
        reference: ``[N, d] -> [N, m]`` exact/reference solution, evaluated once on
            ``eval_points`` at setup; or pass ``eval_values`` directly.
        eval_values: precomputed ``[N, m]`` reference values.
        eval_batch_size: points per validation batch.

    Example:
        >>> line = Box((0.0,), (1.0,))
        >>> dm = CollocationDataModule(
        ...     {"residual": (line, 128), "boundary": (BoxBoundary(line, (0,)), 2)},
        ...     seed=0,
        ... )
    """

    def __init__(
        self,
        sets: Mapping[str, PointSet | tuple[Region, int]],
        *,
        seed: int = 0,
        method: SamplingMethod = "uniform",
        resample: bool = True,
        eval_points: Tensor | None = None,
        reference: Callable[[Tensor], Tensor] | None = None,
        eval_values: Tensor | None = None,
        eval_batch_size: int = 8192,
    ) -> None:
        super().__init__()
        if method not in _METHODS:
            raise ValueError(f"unknown sampling method {method!r}; valid: {', '.join(_METHODS)}")
        if not sets:
            raise ValueError("sets must name at least one point set")
        if not isinstance(resample, bool):
            raise TypeError(f"resample must be True or False, got {resample!r}")
        self.sets: dict[str, PointSet] = {
            name: ps if isinstance(ps, PointSet) else PointSet(*ps) for name, ps in sets.items()
        }
        self.seed = int(seed)
        self.method: SamplingMethod = method
        self.resample = resample
        self.eval_points = eval_points
        self.reference = reference
        self.eval_values = eval_values
        self.eval_batch_size = eval_batch_size
        self.consumed = 0  # training batches handed to the model so far
        self._stream: _CollocationStream | None = None

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self._trainer_attached() else 0
        stream = _CollocationStream(
            self.sets, self.seed, self.method, rank, self.consumed, self.resample
        )
        self._stream = stream
        return DataLoader(stream, batch_size=None, num_workers=0)

    def rewind(self, index: int) -> None:
        """Make the next training batch batch ``index`` of the stream (the guarded switch).

        Batches the loader has already drawn ahead (Lightning prefetches one) are drawn again
        with the right indices when they are handed to the model, so the step after a rewind
        sees exactly the batch an uninterrupted stream at ``index`` would give.
        """
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index!r}")
        self.consumed = int(index)
        if self._stream is not None:
            self._stream.stale = len(self._stream.drawn)
            self._stream.next_index = self.consumed + self._stream.stale

    def held_out(
        self, index: int = 2**40, rank: int = 0, seed_offset: int = 7_777_777
    ) -> dict[str, Tensor]:
        """A batch no training step sees: drawn from another seed, always resampled.

        Fresh points even with ``resample=False``; each rank draws its own.
        """
        seed = self.seed + seed_offset
        return _CollocationStream(self.sets, seed, self.method, rank, 0, True).batch(index)

    def val_dataloader(self) -> DataLoader | list:
        if self.eval_points is None:
            return []
        if self.eval_values is None:
            if self.reference is None:
                raise ValueError("eval_points needs a reference function or eval_values")
            with torch.no_grad():
                self.eval_values = self.reference(self.eval_points).detach()
        if self.eval_points.shape[0] == 0:
            raise ValueError(
                f"eval_points is empty (shape {tuple(self.eval_points.shape)}); pass at least "
                "one evaluation point, or eval_points=None for no validation"
            )
        values = self.eval_values.reshape(self.eval_points.shape[0], -1)
        data = _Slices(self.eval_points.float(), values.float(), self.eval_batch_size)
        return DataLoader(data, batch_size=None, shuffle=False)

    def setup(self, stage: str) -> None:
        """Warn when a fit has no step budget: the stream is infinite, one epoch never ends."""
        if stage == "fit" and self._trainer_attached() and self.trainer.max_steps in (-1, None):
            rank_zero_warn(
                "the collocation stream is infinite (one epoch never ends) and Trainer max_steps "
                "is unset, so training stops only at the Trainer's max_time or when "
                "interrupted; set Trainer(max_steps=N)",
                category=UserWarning,
            )

    def sample(self, index: int = 0, rank: int = 0) -> dict[str, Tensor]:
        """Batch ``index`` of the stream, as the training loop would receive it."""
        stream = _CollocationStream(self.sets, self.seed, self.method, rank, 0, self.resample)
        return stream.batch(index)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self._trainer_attached() and self.trainer.training:
            stream = self._stream
            if stream is not None and stream.drawn:
                stream.drawn.popleft()
                if stream.stale:  # drawn ahead before a rewind: draw the right batch
                    stream.stale -= 1
                    batch = stream.batch(self.consumed)
            self.consumed += 1
        return batch

    def _trainer_attached(self) -> bool:
        return self.trainer is not None

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed, "seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.consumed = int(state_dict["consumed"])
