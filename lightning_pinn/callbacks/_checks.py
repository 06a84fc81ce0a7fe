"""What ``ConflictCallback.setup`` checks before the first step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor

from lightning_pinn.callbacks._trial import max_candidates, max_discarded_steps, rank_candidates
from lightning_pinn.diagnostics import MIN_FINITE_STEPS, TRIAL_SCORES
from lightning_pinn.module import PINNModule

if TYPE_CHECKING:
    from lightning_pinn.callbacks._conflict import ConflictCallback

__all__ = [
    "check_alone",
    "check_escalation",
    "check_reprobe_arguments",
    "check_run",
    "check_trial",
    "check_trial_arguments",
    "check_trial_losses",
]


def check_run(
    trainer: L.Trainer, pl_module: L.LightningModule, probe_steps: int, log_every: int
) -> PINNModule:
    """Raise unless the run can be probed; warn about a logging interval Lightning drops.

    Raises:
        TypeError: the module is not a :class:`~lightning_pinn.PINNModule`.
        ValueError: fewer than 2 losses, or ``max_steps`` or the L-BFGS phase starts before
            the probe ends.
    """
    if not isinstance(pl_module, PINNModule):
        raise TypeError(
            f"ConflictCallback needs a lightning_pinn.PINNModule (it reads its "
            f"last_record), got {type(pl_module).__name__}; subclass PINNModule and "
            "override losses(batch)"
        )
    if pl_module.num_losses < 2:
        raise ValueError(
            f"ConflictCallback compares pairs of losses and needs K >= 2, but the module "
            f"has {pl_module.num_losses} loss ({list(pl_module.loss_names)}); remove the "
            "callback for single-loss problems"
        )
    if 0 < trainer.max_steps < probe_steps:
        raise ValueError(
            f"Trainer(max_steps={trainer.max_steps}) ends before the probe of "
            f"probe_steps={probe_steps} steps; lower probe_steps or raise max_steps"
        )
    lbfgs = getattr(pl_module, "lbfgs", None)
    if lbfgs is not None and lbfgs.after < probe_steps:
        raise ValueError(
            f"the L-BFGS phase starts after step {lbfgs.after}, inside the probe of "
            f"probe_steps={probe_steps}: the probe profiles first-order steps (L-BFGS steps "
            "record J only every record_every steps), so it would end without a report. Lower "
            f"probe_steps to at most {lbfgs.after} or start L-BFGS later (LBFGSPhase(after=...))"
        )
    if log_every > 0 and trainer.log_every_n_steps > 0 and log_every % trainer.log_every_n_steps:
        rank_zero_warn(
            f"ConflictCallback(log_every_n_steps={log_every}) is not a multiple of "
            f"Trainer(log_every_n_steps={trainer.log_every_n_steps}); Lightning only "
            "flushes logged values on its own interval, so some values will be dropped"
        )
    return pl_module


def check_alone(trainer: L.Trainer, callback: ConflictCallback) -> None:
    """Raise if another ConflictCallback on the trainer also switches the strategy.

    Two switching callbacks would each swap the module's strategy after their own probe, the
    second undoing the first, and one report would describe a run that did not happen.
    Callbacks with ``auto_switch=False`` only watch, so any number of them may share a run.

    Raises:
        ValueError: ``callback`` switches and so does another ConflictCallback.
    """
    from lightning_pinn.callbacks._conflict import ConflictCallback

    if not callback.auto_switch:
        return
    others = [
        i
        for i, c in enumerate(trainer.callbacks)  # type: ignore[attr-defined]
        if isinstance(c, ConflictCallback) and c is not callback and c.auto_switch
    ]
    if others:
        raise ValueError(
            f"the trainer has {len(others) + 1} ConflictCallbacks with auto_switch=True "
            f"(callbacks at positions {others} and this one): each would switch the "
            "strategy after its own probe. Keep one switching callback and pass "
            "auto_switch=False to the others (they still profile and report)"
        )


def check_trial_losses(losses: Tensor, loss_names: Sequence[str]) -> None:
    """Raise if a loss is negative at the first step of a run with trials.

    The trial scores compare loss *ratios* (``L_k(after) / L_k(before)``), which only rank
    progress for losses that are >= 0 (squared residuals). A signed loss (an energy of the
    Deep Ritz kind) would be scored as if it had vanished. Checked once, at step 1, so the
    probe has not spent its steps; under DDP the losses are already the ranks' mean.

    Raises:
        ValueError: a loss below zero, with its name and value.
    """
    values = losses.detach().double().cpu()
    negative = {n: float(v) for n, v in zip(loss_names, values, strict=True) if v < 0}
    if negative:
        raise ValueError(
            f"ConflictCallback(trial_steps=...) scores trials by ratios of the unweighted "
            f"losses, which need losses >= 0, but at step 1 {negative} are negative; train "
            "without trials (trial_steps=None: the diagnosis alone decides) or shift those "
            "losses to be non-negative"
        )


def check_trial_arguments(
    trial_steps: object, auto_switch: bool, trial_score: object, trial_margin: object = 0.0
) -> None:
    """Raise for a bad ``trial_steps``, ``trial_score`` or ``trial_margin`` (constructor)."""
    if trial_steps is not None and (
        isinstance(trial_steps, bool) or not isinstance(trial_steps, int) or trial_steps <= 0
    ):
        raise ValueError(f"trial_steps must be a positive integer or None, got {trial_steps!r}")
    if trial_steps is not None and not auto_switch:
        raise ValueError("trial_steps needs auto_switch=True (the trials end in a switch)")
    if trial_score not in TRIAL_SCORES:
        raise ValueError(f"trial_score must be one of {TRIAL_SCORES}, got {trial_score!r}")
    if (
        isinstance(trial_margin, bool)
        or not isinstance(trial_margin, int | float)
        or not math.isfinite(trial_margin)
        or trial_margin < 0
    ):
        raise ValueError(
            f"trial_margin must be a finite number >= 0 (0: the best score wins), "
            f"got {trial_margin!r}"
        )


def check_reprobe_arguments(
    every: object,
    steps: object,
    probe_steps: int,
    auto_switch: bool,
    escalate: object = False,
    trial_steps: object = None,
) -> int | None:
    """Raise for bad re-probe or escalation arguments; return the window length (None: no
    re-probing and no escalation)."""
    for name, value in (("reprobe_every", every), ("reprobe_steps", steps)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value <= 0
        ):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    if not isinstance(escalate, bool):
        raise ValueError(f"escalate must be True or False, got {escalate!r}")
    if escalate and not auto_switch:
        raise ValueError("escalate needs auto_switch=True (an escalation is a switch)")
    if escalate and trial_steps is not None:
        raise ValueError(
            "escalate and trial_steps are two ways to check the diagnosis after the probe "
            "(a second window under reweighting, or trials of the candidates): pass one"
        )
    if every is None:
        if escalate:  # one window under the first switch
            return _diagnosable(steps if isinstance(steps, int) else probe_steps)
        if steps is not None:
            raise ValueError("reprobe_steps needs reprobe_every (or escalate=True)")
        return None
    assert isinstance(every, int)
    if not auto_switch:
        raise ValueError("reprobe_every needs auto_switch=True (a re-probe may switch back)")
    window = steps if isinstance(steps, int) else min(probe_steps, every)
    if window > every:
        raise ValueError(f"reprobe_steps={window} is longer than reprobe_every={every}")
    return _diagnosable(window)


def _diagnosable(window: int) -> int:
    """``window``, unless it is too short to ever diagnose a regime."""
    if window < MIN_FINITE_STEPS:
        raise ValueError(
            f"a re-probe window of {window} step can never diagnose: a regime needs at least "
            f"{MIN_FINITE_STEPS} finite steps; pass reprobe_steps >= {MIN_FINITE_STEPS} (the "
            "window is reprobe_steps, else min(probe_steps, reprobe_every))"
        )
    return window


def check_trial(
    trainer: L.Trainer, module: PINNModule, callback: ConflictCallback, trial_steps: int
) -> None:
    """Raise now what the guarded switch would hit later.

    Raises:
        ValueError: a step budget that ends before the trials do, or a candidate the module
            cannot take.
    """
    n = max_candidates(callback.candidates, callback.interventions)
    needed = callback.probe_steps + n * trial_steps
    if trainer.max_steps is not None and 0 < trainer.max_steps <= needed:
        raise ValueError(
            f"Trainer(max_steps={trainer.max_steps}) leaves no step after the probe "
            f"({callback.probe_steps}) and up to {n} trials of trial_steps={trial_steps} "
            f"({needed} steps); lower trial_steps or raise max_steps above {needed}"
        )
    lbfgs = getattr(module, "lbfgs", None)
    discarded = max_discarded_steps(trial_steps, callback.candidates, callback.interventions)
    if (
        lbfgs is not None
        and trainer.max_steps is not None
        and trainer.max_steps > 0
        and lbfgs.after >= trainer.max_steps - discarded
    ):
        raise ValueError(
            f"the L-BFGS phase starts after {lbfgs.after} training steps of the module, but "
            f"the losing trials can take up to {discarded} of Trainer(max_steps="
            f"{trainer.max_steps}), which leaves the module {trainer.max_steps - discarded}: "
            "the phase might never run. Start it earlier (LBFGSPhase(after=...)) or raise "
            "max_steps; `lightning-pinn run` places an after_fraction on the steps the trials "
            "leave"
        )
    if lbfgs is not None and lbfgs.after < callback.probe_steps + trial_steps:
        raise ValueError(
            f"the L-BFGS phase starts at step {lbfgs.after}, before the trials end (probe "
            f"{callback.probe_steps} + trial_steps {trial_steps} per candidate, counted by the "
            "module); the trials snapshot the first-order optimizer only: start L-BFGS later"
        )
    seen = set()
    for value in callback.interventions.values():
        for c in rank_candidates(value, callback.candidates):
            if id(c) in seen or (c == module.strategy_name and not callback.strategy_options):
                continue
            seen.add(id(c))
            try:
                if isinstance(c, str):
                    module.check_strategy(c, **({} if c == "none" else callback.strategy_options))
                else:
                    module.check_strategy(c)
            except ValueError as err:
                raise ValueError(
                    f"ConflictCallback: the trial candidate {c!r} cannot be applied to this "
                    f"module: {err}"
                ) from err


def check_escalation(trainer: L.Trainer, module: PINNModule, probe_steps: int, window: int) -> None:
    """Raise now when the escalation window (``window`` steps after the probe) cannot end
    within the first-order phase of the run.

    Raises:
        ValueError: ``max_steps`` ends the run, or the L-BFGS phase starts, before the window
            ends.
    """
    end = probe_steps + window
    if trainer.max_steps is not None and 0 < trainer.max_steps <= end:
        raise ValueError(
            f"Trainer(max_steps={trainer.max_steps}) ends the run before the escalation window "
            f"does (probe {probe_steps} + reprobe_steps {window} = {end} steps): lower "
            "reprobe_steps or probe_steps, or raise max_steps"
        )
    lbfgs = getattr(module, "lbfgs", None)
    if lbfgs is not None and lbfgs.after < end:
        raise ValueError(
            f"the L-BFGS phase starts at step {lbfgs.after}, before the escalation window ends "
            f"(probe {probe_steps} + reprobe_steps {window} = {end}, counted by the module); "
            "an escalation then could not train the adapters it adds: lower reprobe_steps or "
            "start L-BFGS later"
        )
