"""The second-order phase: its options (:class:`LBFGSPhase`) and its running state."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from lightning.fabric.utilities.apply_func import apply_to_collection, move_data_to_device
from torch import Tensor

__all__ = ["LBFGSPhase", "LBFGSRun"]


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"LBFGSPhase {name} must be an integer >= {low}, got {value!r}")


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"LBFGSPhase {name} must be a finite number {bound}, got {value!r}")


@dataclass(frozen=True)
class LBFGSPhase:
    """Switch to ``torch.optim.LBFGS`` after ``after`` first-order training steps.

    From training step ``after + 1`` on, each training step is one ``LBFGS.step(closure)``
    of at most ``max_iter`` inner iterations on the weighted sum ``Σ_k λ_k L_k`` over every
    trainable parameter (θ_s and adapters, if any). The weights λ are the strategy's latest
    per-loss weights at the switch, frozen (1 for ``"none"``). The batch of the switch step is
    frozen too: a line search needs one objective, so the phase trains on fixed points (make
    the datamodule's point counts as large as the phase should see). L-BFGS keeps its history
    across steps, so ``max_iter=5`` for 60 steps does about what ``max_iter=300`` does in one
    call, with a checkpoint, a log line and a progress tick every 5 iterations; each call costs
    one extra evaluation of the losses (its starting point).

    Every ``record_every`` L-BFGS steps (and on the last step) the module computes the
    per-loss ``J`` as a first-order step does and publishes it as ``last_record``, so the
    statistics go on; on the other steps ``last_record`` is ``None`` and callbacks skip them.
    When the objective has not decreased for ``stall_steps`` consecutive calls (L-BFGS
    reached its tolerances or the line search made no progress), training stops, as
    ``EarlyStopping`` stops it, with an info line.

    Args:
        after: first-order training steps before the switch (0: L-BFGS from the start).
            Must be below the Trainer's ``max_steps`` (checked when ``fit`` starts).
        lr: L-BFGS step length (1 with the strong-Wolfe line search).
        max_iter: inner L-BFGS iterations per training step.
        history_size: curvature pairs kept.
        tolerance_grad: an L-BFGS call returns when ``max |∇| <=`` this.
        tolerance_change: an L-BFGS call returns when the loss or step changes less.
        line_search: ``"strong_wolfe"`` or ``None`` (fixed step ``lr``; rarely useful).
        record_every: L-BFGS steps between two records of ``J`` and the statistics.
        stall_steps: consecutive calls without a decrease that stop training (with
            ``rad_candidates``: that draw a fresh adaptive batch instead).
        rad_candidates: 0 (default) trains on the switch step's batch. ``M > 0``: the frozen
            batch's set ``rad_set`` is drawn by residual-based adaptive distribution (RAD, Wu
            et al. 2023) instead: ``M`` candidates from the set's region, of which the set's
            count are kept with probability ``∝ |r|^k / mean(|r|^k) + c``, so points gather
            where the PDE residual ``r`` is large (a shock, an interface). Needs a
            :class:`~lightning_pinn.data.CollocationDataModule` and a module with
            ``pointwise_residual`` (every :class:`~lightning_pinn.problems.ProblemModule`).
        rad_k: the exponent ``k`` (1: Wu et al.'s default).
        rad_c: the floor ``c`` (1: half of the points, on average, stay uniform).
        rad_every: with ``rad_candidates``, L-BFGS steps between two fresh draws (0: one
            draw, at the switch). A fresh draw changes the objective, so L-BFGS restarts
            its history.
        rad_set: the point set RAD draws (the PDE residual's).
        fold_adapters: at the switch, fold the prediction's adapters (``predict_with``) into
            the trunk's weights and drop every adapter, so L-BFGS trains the one function
            the run predicts on every loss (False: the adapters stay, and in per-loss mode
            each loss keeps its own pathway). The prediction is unchanged at the switch; the
            adapters' group leaves the first-order optimizer; a run resumed after the switch
            restores the folded network. Linear adapters only (checked at fit start).

    Raises:
        ValueError: an argument out of range (the message names it and its value).

    Example:
        >>> LBFGSPhase(after=2000, max_iter=5, history_size=50)  # doctest: +ELLIPSIS
        LBFGSPhase(after=2000, lr=1.0, max_iter=5, ...)
    """

    after: int
    lr: float = 1.0
    max_iter: int = 5
    history_size: int = 50
    tolerance_grad: float = 1e-9
    tolerance_change: float = 1e-12
    line_search: Literal["strong_wolfe"] | None = "strong_wolfe"
    record_every: int = 10
    stall_steps: int = 3
    rad_candidates: int = 0
    rad_k: float = 1.0
    rad_c: float = 1.0
    rad_every: int = 0
    rad_set: str = "residual"
    fold_adapters: bool = False

    def __post_init__(self) -> None:
        _check_int("after", self.after, 0)
        _check_positive("lr", self.lr)
        _check_int("max_iter", self.max_iter, 1)
        _check_int("history_size", self.history_size, 1)
        _check_positive("tolerance_grad", self.tolerance_grad, allow_zero=True)
        _check_positive("tolerance_change", self.tolerance_change, allow_zero=True)
        if self.line_search not in ("strong_wolfe", None):
            raise ValueError(
                f"LBFGSPhase line_search must be 'strong_wolfe' or None, got {self.line_search!r}"
            )
        _check_int("record_every", self.record_every, 1)
        _check_int("stall_steps", self.stall_steps, 1)
        _check_int("rad_candidates", self.rad_candidates, 0)
        _check_positive("rad_k", self.rad_k, allow_zero=True)
        _check_positive("rad_c", self.rad_c, allow_zero=True)
        _check_int("rad_every", self.rad_every, 0)
        if self.rad_every and not self.rad_candidates:
            raise ValueError(
                f"LBFGSPhase rad_every={self.rad_every} re-draws the adaptive batch, which "
                "needs rad_candidates > 0 (how many candidate points each draw scores)"
            )
        if not isinstance(self.fold_adapters, bool):
            raise ValueError(
                f"LBFGSPhase fold_adapters must be True or False, got {self.fold_adapters!r}"
            )
        if not isinstance(self.rad_set, str) or not self.rad_set:
            raise ValueError(f"LBFGSPhase rad_set must name a point set, got {self.rad_set!r}")

    def build(self, params: list[Tensor]) -> torch.optim.LBFGS:
        """The ``torch.optim.LBFGS`` over ``params`` (one param group, as LBFGS requires)."""
        return torch.optim.LBFGS(
            params,
            lr=self.lr,
            max_iter=self.max_iter,
            history_size=self.history_size,
            tolerance_grad=self.tolerance_grad,
            tolerance_change=self.tolerance_change,
            line_search_fn=self.line_search,
        )

    def check_fits(self, max_steps: int) -> None:
        """Raise if the phase would start at or after the Trainer's ``max_steps`` (-1: none).

        Raises:
            ValueError: ``after >= max_steps``.
        """
        if max_steps is not None and 0 <= max_steps <= self.after:
            raise ValueError(
                f"the L-BFGS phase starts after {self.after} first-order steps, but the "
                f"Trainer stops at max_steps={max_steps}, so it would never run; set "
                f"LBFGSPhase(after=...) below {max_steps} or raise Trainer(max_steps=...)"
            )


class LBFGSRun:
    """What the L-BFGS phase has done so far; saved in checkpoints (:meth:`state_dict`).

    Attributes:
        started_at: the module's ``train_steps`` at the switch (``None``: not started).
        steps: L-BFGS training steps taken.
        batch: the frozen batch (tensors detached copies of the switch step's batch).
        weights: the frozen per-loss weights ``[K]``.
        last_loss: the weighted objective at the start of the latest call.
        stalled: consecutive calls without a decrease.
        stopped: whether the phase stopped (stall or non-finite objective).
    """

    def __init__(self) -> None:
        self.started_at: int | None = None
        self.steps = 0
        self.batch: Any = None
        self.weights: Tensor | None = None
        self.last_loss: float | None = None
        self.stalled = 0
        self.stopped = False
        self.rad_draws = 0  # adaptive (RAD) batches drawn so far

    @property
    def started(self) -> bool:
        return self.started_at is not None

    def start(self, train_steps: int, batch: Any, weights: Tensor) -> None:
        """Freeze ``batch`` and ``weights`` ``[K]`` at the switch after ``train_steps`` steps."""
        self.started_at = train_steps
        self.batch = apply_to_collection(batch, Tensor, lambda t: t.detach().clone())
        self.weights = weights.detach().clone()

    def device_batch(self, device: torch.device) -> Any:
        """The frozen batch on ``device`` (a restored checkpoint may hold it elsewhere)."""
        self.batch = move_data_to_device(self.batch, device)
        return self.batch

    def observe(self, loss: float) -> None:
        """Count a call whose objective started at ``loss`` and update :attr:`stalled`.

        A call stalls when its starting objective is not below the previous call's (the
        previous call did not move the parameters to a lower objective).
        """
        if self.last_loss is not None and not loss < self.last_loss:
            self.stalled += 1
        else:
            self.stalled = 0
        self.last_loss = loss
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "steps": self.steps,
            "batch": self.batch,
            "weights": self.weights,
            "last_loss": self.last_loss,
            "stalled": self.stalled,
            "stopped": self.stopped,
            "rad_draws": self.rad_draws,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.started_at = state["started_at"]
        self.steps = state["steps"]
        self.batch = state["batch"]
        self.weights = state["weights"]
        self.last_loss = state["last_loss"]
        self.stalled = state["stalled"]
        self.stopped = state["stopped"]
        self.rad_draws = state.get("rad_draws", 0)  # absent from checkpoints before RAD
