"""Collocation data: a fresh batch of points per loss every step, reproducible and resumable.

Batch i of a run is a pure function of ``(seed, rank, i)``, so a run resumed from a checkpoint
sees exactly the points the uninterrupted run would have seen, and every DDP rank draws its
own points. With ``resample=False`` every step sees batch 0: fixed collocation points.
"""

from lightning_pinn.data._module import CollocationDataModule
from lightning_pinn.data._regions import (
    Box,
    BoxBoundary,
    PointSet,
    Region,
    SamplingMethod,
    check_batch,
    sample_unit,
)

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
