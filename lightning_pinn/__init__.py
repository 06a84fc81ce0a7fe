"""lightning_pinn: physics-informed neural networks on PyTorch Lightning that diagnose
gradient conflict between losses and switch, in the same run, to per-loss adapters,
reweighting or gradient surgery (Kim & N'guessan 2026)."""

from lightning_pinn import problems
from lightning_pinn._allocator import tune_allocator
from lightning_pinn.adapters import PerLossAdapter
from lightning_pinn.callbacks import ConflictCallback
from lightning_pinn.data import Box, BoxBoundary, CollocationDataModule, PointSet
from lightning_pinn.diagnostics import ConflictReport, Regime
from lightning_pinn.metrics import RelativeL2Error
from lightning_pinn.module import PINNModule
from lightning_pinn.networks import (
    MLP,
    RWF,
    FourierFeatures,
    ModifiedMLP,
    PeriodicEmbedding,
    PirateNet,
)

__all__ = [
    "Box",
    "BoxBoundary",
    "CollocationDataModule",
    "ConflictCallback",
    "ConflictReport",
    "FourierFeatures",
    "MLP",
    "ModifiedMLP",
    "PINNModule",
    "PerLossAdapter",
    "PeriodicEmbedding",
    "PirateNet",
    "PointSet",
    "RWF",
    "Regime",
    "RelativeL2Error",
    "problems",
    "tune_allocator",
]

__version__ = "0.1.0"
