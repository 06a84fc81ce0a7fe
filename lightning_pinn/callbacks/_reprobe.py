"""Re-probing after the switch: profile a short window every ``reprobe_every`` steps and step
back to ``reweight`` or ``none`` when the regime that called for the intervention has gone;
with ``escalate``, the first window after a switch to ``reweight`` may instead step forward to
the directional intervention when the conflict persists under it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor

from lightning_pinn.callbacks._switching import apply_intervention, intervention_name
from lightning_pinn.diagnostics import (
    ProbeRecorder,
    Regime,
    aggregate_window,
    classify_regime,
    min_finite_steps,
)
from lightning_pinn.module import PINNModule
from lightning_pinn.strategies import Strategy

__all__ = ["STEP_BACK", "Reprober"]

STEP_BACK: dict[str, int] = {"none": 0, "reweight": 1}
"""The strategies a re-probe may step back to, weakest first; anything else ranks above."""

_REGIME_INDEX = {r.value: i for i, r in enumerate(Regime)}


def _strength(name: str) -> int:
    return STEP_BACK.get(name, len(STEP_BACK))


class Reprober:
    """Windows of ``window`` steps ending every ``every`` steps after the switch settled.

    At the end of each window the regime rule runs on the window's statistics; when its
    intervention is ``none`` or ``reweight`` and weaker than the active strategy, the module
    steps back to it. Each re-probe is an event ``{step, regime, strategy, switched_to}``
    (``switched_to`` None when nothing changed).

    ``escalate_to`` (the escalation of ``ConflictCallback(escalate=True)``): the *first* window
    may step forward instead: when it is directional and the active strategy is
    ``escalate_from`` (default ``reweight``: the conflict remains after reweighting), the
    module switches to ``escalate_to`` (the event has ``"escalated": True``). ``windows``
    caps the number of windows (``None``: no cap); ``step_back=False`` only escalates.

    Re-probes judge first-order training: once the module's L-BFGS phase has started (its
    batch and weights are frozen at the switch), no window runs, and a window that the phase
    cuts short is dropped without a decision.
    """

    def __init__(
        self,
        every: int,
        window: int,
        *,
        tau_dir: float,
        tau_mag: float,
        interventions: Mapping[str, str],
        options: Mapping[str, Any],
        escalate_to: str | Strategy | None = None,
        escalate_from: str = "reweight",
        windows: int | None = None,
        step_back: bool = True,
        tau_cos: float = 0.0,
    ) -> None:
        self.every, self.window = every, window
        self.escalate_to, self.windows, self.step_back = escalate_to, windows, step_back
        self.escalate_from = escalate_from
        self.escalation_pending = escalate_to is not None
        self.decided = 0  # windows that ended
        self.tau_dir, self.tau_mag, self.tau_cos = tau_dir, tau_mag, tau_cos
        self.interventions = dict(interventions)
        self.options = dict(options)
        self.settled_at: int | None = None  # module step at which the switch settled
        self.recorder: ProbeRecorder | None = None
        self.events: list[dict[str, Any]] = []

    def observe(
        self,
        module: PINNModule,
        jac: Tensor,
        update: Tensor | None,
        finite: bool | Tensor,
        step: int,
    ) -> dict[str, Any] | None:
        """Record this step if it is in a window; at a window's end diagnose and maybe step
        back. Returns the event at a window's end, else None."""
        if self.settled_at is None or step <= self.settled_at:
            return None
        if module.lbfgs_run.started:  # this was an L-BFGS step
            self.recorder = None
            return None
        if self.windows is not None and self.decided >= self.windows:
            return None
        r = (step - self.settled_at) % self.every
        if r != 0 and r <= self.every - self.window:
            return None
        row = self.window - 1 if r == 0 else r - (self.every - self.window) - 1
        if row == 0 or self.recorder is None:
            self.recorder = ProbeRecorder(self.window, module.num_losses, device=jac.device)
        elif self.recorder.device != jac.device:
            self.recorder.to(jac.device)
        self.recorder.record(jac, update, finite=finite, index=row)
        return self._decide(module, step) if r == 0 else None

    def _decide(self, module: PINNModule, step: int) -> dict[str, Any] | None:
        assert self.recorder is not None
        stats = aggregate_window(**self.recorder.buffers(), floor=self.recorder.floor)
        self.recorder = None
        self.decided += 1
        escalating, self.escalation_pending = self.escalation_pending, False
        if stats.finite_steps < min_finite_steps(self.window):
            return None
        diagnosis = classify_regime(
            stats.late_conflict_rate,
            stats.late_mean_cosine,
            stats.median_imbalance,
            tau_dir=self.tau_dir,
            tau_mag=self.tau_mag,
            interventions=self.interventions,
            tau_cos=self.tau_cos,
        )
        current, target = module.strategy_name, diagnosis.strategy
        if (
            escalating
            and self.escalate_to is not None
            and diagnosis.regime is Regime.DIRECTIONAL
            and current == self.escalate_from
            and intervention_name(self.escalate_to) != current
        ):
            return self._escalate(module, step, current)
        back = self.step_back and target in STEP_BACK and _strength(target) < _strength(current)
        event = {
            "step": step,
            "regime": diagnosis.regime.value,
            "strategy": current,
            "switched_to": target if back else None,
        }
        rank_zero_info(
            f"ConflictCallback: re-probe at step {step}: {diagnosis.regime.value}"
            + (f"; stepping back {current!r} -> {target!r}" if back else f"; keeping {current!r}")
        )
        if back:
            options = {} if target == "none" else self.options
            apply_intervention(module, target, f"re-probe: {diagnosis.regime.value}", options)
        self.events.append(event)
        return event

    def _escalate(self, module: PINNModule, step: int, current: str) -> dict[str, Any]:
        """The conflict persists under ``current``: switch forward to ``escalate_to``."""
        assert self.escalate_to is not None
        target = intervention_name(self.escalate_to)
        rank_zero_info(
            f"ConflictCallback: re-probe at step {step}: still directional under {current!r}; "
            f"escalating to {target!r}"
        )
        options = {} if isinstance(self.escalate_to, Strategy) else self.options
        reason = f"re-probe: directional under {current}"
        apply_intervention(module, self.escalate_to, reason, options)
        event = {
            "step": step,
            "regime": Regime.DIRECTIONAL.value,
            "strategy": current,
            "switched_to": target,
            "escalated": True,
        }
        self.events.append(event)
        return event

    @staticmethod
    def metrics(event: Mapping[str, Any]) -> dict[str, float]:
        """Logged scalars of a re-probe: the regime's index, whether it stepped back, and
        whether it escalated."""
        escalated = bool(event.get("escalated"))
        return {
            "conflict/reprobe/regime": float(_REGIME_INDEX[event["regime"]]),
            "conflict/reprobe/step_back": float(event["switched_to"] is not None and not escalated),
            "conflict/reprobe/escalated": float(escalated),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "settled_at": self.settled_at,
            "recorder": self.recorder.state_dict() if self.recorder is not None else None,
            "events": [dict(e) for e in self.events],
            "escalation_pending": self.escalation_pending,
            "decided": self.decided,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.settled_at = state["settled_at"]
        saved = state["recorder"]
        self.recorder = ProbeRecorder.from_state_dict(saved) if saved is not None else None
        self.events = [dict(e) for e in state["events"]]
        self.escalation_pending = bool(
            state.get("escalation_pending", self.escalate_to is not None and not self.events)
        )
        self.decided = int(state.get("decided", len(self.events)))
