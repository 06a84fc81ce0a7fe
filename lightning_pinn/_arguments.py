"""Validation of :class:`~lightning_pinn.PINNModule`'s constructor arguments."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from lightning_pinn._optimizers import OPTIMIZERS

__all__ = ["NONFINITE", "check_module_arguments"]

NONFINITE = ("raise", "skip")


def check_module_arguments(
    model: Any,
    loss_names: Sequence[str],
    lr: Any,
    optimizer: Any,
    lr_decay_rate: Any,
    lr_decay_steps: Any,
    on_nonfinite: Any,
) -> tuple[str, ...]:
    """Raise on an invalid constructor argument; return the loss names as a tuple.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: any other invalid argument (the message shows the value).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    names = tuple(loss_names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"loss_names must be non-empty strings, got {loss_names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"loss_names must be unique, got {names!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if not 0 < lr_decay_rate <= 1:
        raise ValueError(f"lr_decay_rate must be in (0, 1], got {lr_decay_rate!r}")
    if lr_decay_steps < 1:
        raise ValueError(f"lr_decay_steps must be >= 1, got {lr_decay_steps!r}")
    if on_nonfinite not in NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {NONFINITE}, got {on_nonfinite!r}")
    return names
