"""The collocation stream: batch i of a run is a pure function of ``(seed, rank, i)``."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

from lightning_pinn.data._regions import PointSet, SamplingMethod, check_batch


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
