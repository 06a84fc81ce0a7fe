"""Builders shared by the tests (exposed as fixtures in ``tests/conftest.py``): a tiny Burgers
problem and a tiny Trainer that writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_pinn import problems
from lightning_pinn.problems import Problem


def tiny_burgers(n_residual: int = 128, n_initial: int = 32, n_boundary: int = 32) -> Problem:
    """Burgers with few points: a training step takes milliseconds."""
    return problems.get(
        "burgers", n_residual=n_residual, n_initial=n_initial, n_boundary=n_boundary
    )


def tiny_trainer(steps: int, callbacks: Sequence[Callback] = (), **overrides: Any) -> L.Trainer:
    """A Trainer for ``steps`` steps: no logger, no progress bar, no validation; checkpoints
    only when a ``ModelCheckpoint`` is among ``callbacks``. ``overrides`` replace any of it."""
    options: dict[str, Any] = {
        "max_steps": steps,
        "logger": False,
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
        "callbacks": list(callbacks),
    }
    return L.Trainer(**{**options, **overrides})
