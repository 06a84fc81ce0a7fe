"""Re-probing after the switch: profile a short window every ``reprobe_every`` steps and step
back to ``reweight`` or ``none`` when the regime that called for the intervention has gone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor

from lightning_pinn.callbacks._switching import apply_intervention
from lightning_pinn.diagnostics import (
    ProbeRecorder,
    Regime,
    aggregate_window,
    classify_regime,
    min_finite_steps,
)
from lightning_pinn.module import PINNModule

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
    steps back to it (never forward). Each re-probe is an event ``{step, regime, strategy,
    switched_to}`` (``switched_to`` None when nothing changed).
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
    ) -> None:
        self.every, self.window = every, window
        self.tau_dir, self.tau_mag = tau_dir, tau_mag
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
        if stats.finite_steps < min_finite_steps(self.window):
            return None
        diagnosis = classify_regime(
            stats.late_conflict_rate,
            stats.late_mean_cosine,
            stats.median_imbalance,
            tau_dir=self.tau_dir,
            tau_mag=self.tau_mag,
            interventions=self.interventions,
        )
        current, target = module.strategy_name, diagnosis.strategy
        back = target in STEP_BACK and _strength(target) < _strength(current)
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

    @staticmethod
    def metrics(event: Mapping[str, Any]) -> dict[str, float]:
        """Logged scalars of a re-probe: the regime's index and whether it stepped back."""
        return {
            "conflict/reprobe/regime": float(_REGIME_INDEX[event["regime"]]),
            "conflict/reprobe/step_back": float(event["switched_to"] is not None),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "settled_at": self.settled_at,
            "recorder": self.recorder.state_dict() if self.recorder is not None else None,
            "events": [dict(e) for e in self.events],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.settled_at = state["settled_at"]
        saved = state["recorder"]
        self.recorder = ProbeRecorder.from_state_dict(saved) if saved is not None else None
        self.events = [dict(e) for e in state["events"]]
