"""Finite checks without a host synchronisation per step (``finite_check="deferred"``).

A step with a non-finite loss or gradient must never reach the weights. The plain way to
guarantee it reads a device flag on the host every step (``bool(torch.isfinite(...).all())``),
which stalls an accelerator's queue. The deferred way keeps the flag on the device:

- the optimizer is a *fused* torch optimizer (Adam, AdamW, SGD), whose step takes a
  ``found_inf`` tensor and skips the whole update on the device when it is set, step count
  included (the mechanism ``torch.amp.GradScaler`` uses);
- the counts of skipped steps stay on the device and are read on *check steps* only: logging
  steps, steps where the strategy changes state that non-finite inputs would corrupt (a
  reweighting refresh, a surgery aggregator), every :data:`CHECK_EVERY` steps, and the end of
  training. There the ``on_nonfinite`` policy applies as usual (``"raise"`` names the first
  non-finite step; the weights were never touched).

One difference to ``"every_step"``: a skipped step still advances the learning-rate schedule
(the host does not know it was skipped). On a CPU a host read is not a synchronisation, so
``finite_check="auto"`` keeps ``"every_step"`` there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = [
    "CHECK_EVERY",
    "FINITE_CHECKS",
    "FUSED_OPTIMIZERS",
    "FiniteCheck",
    "DeferredCounters",
    "check_finite_check",
    "counters_for",
    "deferred_step_due",
    "resolve_deferred",
    "set_found_inf",
    "settle_deferred",
]

FiniteCheck = Literal["auto", "every_step", "deferred"]
FINITE_CHECKS: tuple[str, ...] = ("auto", "every_step", "deferred")
FUSED_OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
CHECK_EVERY = 100
"""Under ``"deferred"``, the host reads the device's skip counters at least this often."""


def check_finite_check(finite_check: object, optimizer: str) -> None:
    """Raise early for an unknown ``finite_check`` or ``"deferred"`` without a fused optimizer.

    Raises:
        ValueError: as above, naming the valid choices.
    """
    if finite_check not in FINITE_CHECKS:
        raise ValueError(f"finite_check must be one of {FINITE_CHECKS}, got {finite_check!r}")
    if finite_check == "deferred" and optimizer not in FUSED_OPTIMIZERS:
        raise ValueError(
            f"finite_check='deferred' needs a fused torch optimizer {FUSED_OPTIMIZERS} (its "
            f"step skips a non-finite update on the device); optimizer={optimizer!r} has none. "
            "Use finite_check='every_step' with this optimizer."
        )


def resolve_deferred(module: PINNModule) -> bool:
    """Whether this module's first-order steps check finiteness on the device.

    ``"auto"``: on an accelerator (not on a CPU, where a host read costs nothing), with a
    fused-capable optimizer and without fp16 loss scaling (the scaler checks by itself).
    """
    choice = module.finite_check
    if choice == "every_step":
        return False
    if module._trainer is not None and module._grad_scaler() is not None:
        return False
    if choice == "deferred":
        return True
    return module.device.type == "cuda" and module.optimizer_name in FUSED_OPTIMIZERS


class DeferredCounters:
    """Device counters of the steps skipped since the last check step.

    Attributes:
        skipped: skipped steps since the last check (int64, 0-dim).
        run: non-finite steps in a row, carried over from the host's count at the last check.
        first: the first skipped step since the last check (-1: none).
    """

    def __init__(self, device: torch.device, consecutive: int) -> None:
        self.skipped = torch.zeros((), dtype=torch.int64, device=device)
        self.run = torch.full((), consecutive, dtype=torch.int64, device=device)
        self.first = torch.full((), -1, dtype=torch.int64, device=device)

    def add(self, bad: Tensor, step: int) -> None:
        """Count one step; ``bad`` is the device flag of a non-finite step (0-dim bool)."""
        b = bad.to(torch.int64)
        self.skipped += b
        self.run.copy_(torch.where(bad, self.run + 1, torch.zeros_like(self.run)))
        none_yet = self.first < 0
        self.first.copy_(torch.where(bad & none_yet, torch.full_like(self.first, step), self.first))


def deferred_step_due(module: PINNModule) -> bool:
    """Whether the coming first-order step may skip the host check (a deferred step)."""
    if not module._finite_deferred:
        return False
    nxt = module.train_steps + 1
    n = module.trainer.log_every_n_steps
    if n > 0 and nxt % n == 0:  # a logging step reads values anyway
        return False
    if nxt % CHECK_EVERY == 0 or nxt >= (module.trainer.max_steps or 0) > 0:
        return False
    return not module._strategy.stateful_update()


def settle_deferred(module: PINNModule) -> None:
    """Read the device counters on the host and apply the ``on_nonfinite`` policy.

    Raises:
        FloatingPointError: under ``"raise"``, when a deferred step was not finite; under
            ``"skip"``, after ``max_consecutive_skips`` non-finite steps in a row.
    """
    counters: DeferredCounters | None = module._deferred_counters
    if counters is None:
        return
    skipped, run, first = (int(v) for v in (counters.skipped, counters.run, counters.first))
    module._deferred_counters = None
    if skipped == 0:
        module.consecutive_skips = run
        return
    if module.on_nonfinite == "raise":
        raise FloatingPointError(
            f"non-finite loss or gradient at training step {first} (finite_check='deferred' "
            f"found it at step {module.train_steps}); the weights were not updated by it. Use "
            "PINNModule(on_nonfinite='skip') to skip such steps, or lower the learning rate."
        )
    module.skipped_steps += skipped
    module.consecutive_skips = run
    if run >= module.max_consecutive_skips:
        raise FloatingPointError(
            f"{run} training steps in a row had a non-finite loss or gradient (found at step "
            f"{module.train_steps} by finite_check='deferred'); the run is not training, "
            "stopping. The weights are those of the last finite step. Fix the loss, lower the "
            "learning rate, or raise PINNModule(max_consecutive_skips=...)"
        )


def counters_for(module: PINNModule, device: torch.device) -> DeferredCounters:
    """The module's open counters (new ones after a check step)."""
    if module._deferred_counters is None:
        module._deferred_counters = DeferredCounters(device, module.consecutive_skips)
    return module._deferred_counters


def set_found_inf(optimizer: Any, bad: Tensor | None) -> None:
    """Give the fused optimizer its device-side skip flag (None: no flag)."""
    inner = getattr(optimizer, "optimizer", optimizer)  # LightningOptimizer wraps it
    inner.found_inf = None if bad is None else bad.to(torch.float32)
