"""Learning-rate schedules for the first-order phase: linear warm-up, then exponential decay."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["WarmupExponential", "WarmupExponentialLR"]


@dataclass(frozen=True)
class WarmupExponential:
    """Linear warm-up over ``warmup_steps`` steps, then ``lr · decay_rate^(s / decay_steps)``.

    The factor applied to the base learning rate before training step ``s + 1`` (``s`` counts
    the steps already taken, from 0) is

    - ``(s + 1) / warmup_steps`` while ``s < warmup_steps`` (the first step is not wasted at
      learning rate 0; the last warm-up step runs at the full rate);
    - ``decay_rate ** ((s - warmup_steps) / decay_steps)`` after it (``staircase``: the
      exponent rounded down, a step decay every ``decay_steps`` steps).

    This is the jaxpi default (Wang et al. 2023, "An expert's guide to training PINNs":
    warm-up, then exponential decay) with the decay counted from the end of the warm-up, as
    optax's ``warmup_exponential_decay_schedule`` does.

    Args:
        warmup_steps: length of the linear warm-up (0: none).
        decay_rate: factor per ``decay_steps`` steps, in ``(0, 1]`` (1: constant after warm-up).
        decay_steps: steps over which the rate decays by ``decay_rate``.
        staircase: decay in whole ``decay_steps`` intervals instead of continuously.

    Raises:
        ValueError: a negative warm-up, a rate outside ``(0, 1]`` or ``decay_steps < 1``.

    Example:
        >>> s = WarmupExponential(warmup_steps=100, decay_rate=0.9, decay_steps=1000)
        >>> s.factor(0), s.factor(99), round(s.factor(1100), 6)
        (0.01, 1.0, 0.9)
    """

    warmup_steps: int = 0
    decay_rate: float = 1.0
    decay_steps: int = 1000
    staircase: bool = False

    def __post_init__(self) -> None:
        w = self.warmup_steps
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0 (0: no warm-up), got {w!r}")
        rate = self.decay_rate
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate <= 1):
            raise ValueError(f"decay_rate must be in (0, 1] (1: no decay), got {rate!r}")
        d = self.decay_steps
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ValueError(f"decay_steps must be an integer >= 1, got {d!r}")

    def factor(self, step: int) -> float:
        """The learning-rate factor for the step after ``step`` steps taken (``step >= 0``)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        exponent = (step - self.warmup_steps) / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return float(self.decay_rate**exponent)


class WarmupExponentialLR(LRScheduler):
    """A torch ``LRScheduler`` following :class:`WarmupExponential`; step it once per step.

    Every param group (also one added later, e.g. adapters joining, whose base rate is
    appended to ``base_lrs``) gets ``base_lr · schedule.factor(last_epoch)``.

    Args:
        optimizer: the wrapped optimizer.
        schedule: the warm-up and decay.
        last_epoch: index of the last step taken (-1: start).
    """

    def __init__(
        self, optimizer: Optimizer, schedule: WarmupExponential, last_epoch: int = -1
    ) -> None:
        self.schedule = schedule
        super().__init__(optimizer, last_epoch)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's counters and rates; the schedule itself is configuration."""
        return {k: v for k, v in super().state_dict().items() if k != "schedule"}

    def get_lr(self) -> list[float]:  # type: ignore[override]
        factor = self.schedule.factor(max(self.last_epoch, 0))
        return [base * factor for base in self.base_lrs]
