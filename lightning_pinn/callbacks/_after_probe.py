"""What the callback does once the probe has a valid report: the guarded switch's trials or the
plain switch, then re-probes. Kept apart from ``ConflictCallback`` (which wires it in)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
from torch import Tensor

from lightning_pinn.callbacks._report_logging import publish_trial_report, report_directory
from lightning_pinn.callbacks._reprobe import Reprober
from lightning_pinn.callbacks._switching import apply_intervention, intervention_name
from lightning_pinn.callbacks._trial import GuardedTrial, rank_candidates
from lightning_pinn.diagnostics import ConflictReport, Regime, TrialScore
from lightning_pinn.module import PINNModule
from lightning_pinn.strategies import Strategy

__all__ = ["AfterProbe"]


class AfterProbe:
    """Trials (``trial_steps``) or the plain switch, then re-probes (``reprobe_every``)."""

    def __init__(
        self,
        *,
        interventions: dict[str, str | Strategy],
        options: dict[str, Any],
        candidates: list[str | Strategy] | None,
        trial_steps: int | None,
        trial_score: TrialScore,
        trial_margin: float,
        reprobe_every: int | None,
        reprobe_steps: int | None,
        tau_dir: float,
        tau_mag: float,
        output_dir: Path | None,
        escalate_to: str | Strategy | None = None,
        tau_cos: float = 0.0,
    ) -> None:
        self.interventions, self.options = interventions, options
        self.candidates, self.output_dir = candidates, output_dir
        self.trial_steps, self.trial_score = trial_steps, trial_score
        self.trial_margin = trial_margin
        self.trial: GuardedTrial | None = None
        self.reprobe: Reprober | None = None
        if reprobe_every is not None or escalate_to is not None:
            names = {r: intervention_name(s) for r, s in interventions.items()}
            if escalate_to is not None:  # re-probes judge by the full rule
                names[Regime.DIRECTIONAL.value] = intervention_name(escalate_to)
            window = reprobe_steps or 1
            self.reprobe = Reprober(
                reprobe_every or window, window, tau_dir=tau_dir, tau_mag=tau_mag, tau_cos=tau_cos,
                interventions=names, options=options, escalate_to=escalate_to,
                escalate_from=intervention_name(interventions[Regime.DIRECTIONAL.value]),
                windows=None if reprobe_every is not None else 1,
                step_back=reprobe_every is not None,
            )  # fmt: skip

    @property
    def in_trial(self) -> bool:
        return self.trial is not None and self.trial.active

    def start(
        self,
        trainer: L.Trainer,
        module: PINNModule,
        report: ConflictReport,
        held: Sequence[Any] = (),
    ) -> None:
        """At the end of the probe: begin the trials, or switch to the diagnosed intervention.

        ``held``: the probe's last batches, the trials' scoring set when the data loader
        cannot be rewound.
        """
        if self.trial_steps is not None:
            self.trial = self._new_trial(report.regime)
            self.trial.begin(trainer, module, held)
            return
        choice = self.interventions[report.regime]
        apply_intervention(module, choice, report.regime, self.options)
        self._settle(module)

    def before_step(self, module: PINNModule) -> None:
        """Before a training step: while a trial replays a data loader's batches, the module
        trains on the trial's batch instead of the loader's."""
        trial = self.trial
        if trial is not None and trial.active and trial.replay:
            module.trial_feed = functools.partial(trial.feed, module)
        else:
            module.trial_feed = None

    def step(
        self,
        trainer: L.Trainer,
        module: PINNModule,
        report: ConflictReport,
        record: tuple[Tensor, Tensor | None, bool | Tensor, int],
        in_trial: bool,
    ) -> ConflictReport:
        """One step after the probe (``in_trial``: a trial was running before this step);
        returns the report, with the trial table or re-probes added when they change."""
        if in_trial and self.trial is not None:
            if not self.trial.step(trainer, module):
                return report
            report = self.trial.finished_report(report)
            module.trial_feed = None
            publish_trial_report(trainer, report, report_directory(trainer, self.output_dir))
            self._settle(module)
            return report
        if self.reprobe is None:
            return report
        event = self.reprobe.observe(module, *record)
        if event is None:
            return report
        module.log_dict(self.reprobe.metrics(event), on_step=True, on_epoch=False)
        return replace(report, reprobes=tuple(self.reprobe.events))

    def _settle(self, module: PINNModule) -> None:
        """The intervention is in place: re-probes count from this step."""
        if self.reprobe is not None:
            self.reprobe.settled_at = module.train_steps

    def _new_trial(self, regime: str) -> GuardedTrial:
        ranked = rank_candidates(self.interventions[regime], self.candidates)
        return GuardedTrial(
            self.trial_steps or 0, self.trial_score, self.options, ranked, self.trial_margin
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial.state_dict() if self.trial is not None else None,
            "reprobe": self.reprobe.state_dict() if self.reprobe is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any], report: ConflictReport | None) -> None:
        if state.get("trial") is not None and report is not None:
            self.trial = self._new_trial(report.regime)
            self.trial.load_state_dict(state["trial"])
        if self.reprobe is not None and state.get("reprobe") is not None:
            self.reprobe.load_state_dict(state["reprobe"])
