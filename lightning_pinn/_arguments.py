"""Validation of :class:`~lightning_pinn.PINNModule`'s constructor arguments."""

from __future__ import annotations

import functools
import math
import types
from collections.abc import MutableMapping, Sequence
from typing import Any

from torch import nn

from lightning_pinn._optimizers import OPTIMIZERS

__all__ = ["NONFINITE", "check_module_arguments", "drop_callables", "is_predicate"]

NONFINITE = ("raise", "skip")


def check_module_arguments(
    model: Any,
    loss_names: Sequence[str],
    lr: Any,
    optimizer: Any,
    weight_decay: Any,
    lr_decay_rate: Any,
    lr_decay_steps: Any,
    on_nonfinite: Any,
    max_consecutive_skips: Any,
) -> tuple[str, ...]:
    """Raise on an invalid constructor argument; return the loss names as a tuple.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: any other invalid argument (the message shows the value).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(loss_names, str):
        raise ValueError(
            f"loss_names must be a sequence of names, got the string {loss_names!r}; write "
            f"loss_names=({loss_names!r},) for one loss"
        )
    names = tuple(loss_names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"loss_names must be non-empty strings, got {loss_names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"loss_names must be unique, got {names!r}")
    if "total" in names:  # the module logs the sum of the losses as loss/total
        raise ValueError(
            f"loss_names {names!r} uses 'total', which is reserved: the module logs the sum "
            "of the losses as loss/total, and a loss of that name would overwrite it; rename "
            "the loss"
        )
    if not (_is_number(lr) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not (_is_number(weight_decay) and weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if not 0 < lr_decay_rate <= 1:
        raise ValueError(f"lr_decay_rate must be in (0, 1], got {lr_decay_rate!r}")
    if lr_decay_steps < 1:
        raise ValueError(f"lr_decay_steps must be >= 1, got {lr_decay_steps!r}")
    if on_nonfinite not in NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {NONFINITE}, got {on_nonfinite!r}")
    if not (
        isinstance(max_consecutive_skips, int)
        and not isinstance(max_consecutive_skips, bool)
        and max_consecutive_skips >= 1
    ):
        raise ValueError(
            f"max_consecutive_skips must be a positive integer, got {max_consecutive_skips!r}"
        )
    return names


def _is_number(value: object) -> bool:
    """A real number that is not a bool (``lr=True`` is a mistake, not 1.0)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_predicate(value: object) -> bool:
    """A function, lambda or ``functools.partial``: code, not data (kept out of checkpoints)."""
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, functools.partial))


def drop_callables(options: MutableMapping[str, Any]) -> list[str]:
    """Remove the predicate values (e.g. ``target=lambda ...``) in place; return their keys.

    A checkpoint holds data only (it is loaded with ``weights_only``, and lambdas cannot be
    pickled at all), so a predicate is passed again by the user when a run is rebuilt.
    """
    keys = [k for k, v in options.items() if is_predicate(v)]
    for key in keys:
        del options[key]
    return keys
