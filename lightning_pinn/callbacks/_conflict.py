"""``ConflictCallback``: probe gradient conflict, diagnose the regime, switch in place."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor
from typing_extensions import override

from lightning_pinn._snapshot import to_cpu
from lightning_pinn._values import check_flag, is_integer
from lightning_pinn.callbacks._after_probe import AfterProbe
from lightning_pinn.callbacks._checks import (
    check_alone,
    check_escalation,
    check_reprobe_arguments,
    check_run,
    check_trial,
    check_trial_arguments,
    check_trial_losses,
)
from lightning_pinn.callbacks._report_logging import (
    conflict_metrics,
    log_report,
    recorder_on,
    report_directory,
    write_report_files,
)
from lightning_pinn.callbacks._switching import (
    check_interventions,
    intervention_map,
    intervention_name,
)
from lightning_pinn.callbacks._trial import HELD_BATCHES, check_candidates, rewindable
from lightning_pinn.diagnostics import (
    DEFAULT_TAU_COS,
    DEFAULT_TAU_DIR,
    DEFAULT_TAU_MAG,
    MIN_FINITE_STEPS,
    ConflictReport,
    ProbeRecorder,
    Regime,
    TrialScore,
    aggregate_window,
    build_report,
    pair_names,
    validate_thresholds,
)
from lightning_pinn.module import PINNModule, StepRecord
from lightning_pinn.strategies import Strategy, validate_strategy_options

__all__ = ["ConflictCallback"]


class ConflictCallback(Callback):
    r"""Measure gradient conflict between the K losses, diagnose the regime and act on it.

    For the first ``probe_steps`` training steps (counted by the module) it records, from the
    module's :attr:`~lightning_pinn.PINNModule.last_record` (``J`` ``[K, P]`` and the applied
    update ``[P]``), the pairwise cosines, per-loss norms, the imbalance and the cosine of
    each gradient to the applied update, in preallocated device buffers (one ``[K+1, K+1]``
    Gram matrix per step, no host synchronisation). Non-finite steps are skipped. At the end
    of the probe it builds :attr:`report` (a :class:`~lightning_pinn.diagnostics.ConflictReport`,
    regime rule of docs/concepts.md), logs it to every logger (for W&B also a ``wandb.Table``
    and a ``wandb.Image``), writes ``conflict_report.json``, ``conflict_report.md`` and
    ``conflict_probe.png`` into ``output_dir`` or else the logger's directory (with neither,
    no file is written: the report stays in :attr:`report`), and, with ``auto_switch``, sets
    the chosen intervention on the module; training continues.

    Logged every ``log_every_n_steps`` steps (keys in docs/concepts.md), during and after the
    probe: ``conflict/cos/<a>-<b>`` (this step's cosine), ``conflict/rate/<a>-<b>`` (share of
    conflicting steps: during the probe over the probe steps so far; afterwards over a
    trailing window of the last ``rate_window`` steps), ``conflict/imbalance`` (this step's
    ``log10(max n / min n)``) and ``conflict/update_cos/<name>`` (this step's ``a_k``).

    Args:
        probe_steps: length T of the probe window (training steps).
        auto_switch: apply the chosen intervention at the end of the probe.
        log_every_n_steps: logging interval; ``None`` uses ``trainer.log_every_n_steps``
            (values that are not a multiple of it are dropped by Lightning's logger flush).
        tau_dir: conflict-rate threshold of the regime rule, in ``[0, 1]``.
        tau_mag: imbalance threshold in decades, ``>= 0``.
        tau_cos: cosine margin of the directional regime, in ``[0, 1)``: a persistent pair's
            late mean cosine must be below ``-tau_cos`` (default 0: negative).
        interventions: regime → strategy overrides, by name or as a strategy object, e.g.
            ``{"directional": "surgery"}`` or ``{"directional": AdapterStrategy(rank=8)}``
            (the module adopts a copy of the object).
        strategy_options: keyword arguments passed to ``set_strategy`` with an intervention
            given by name (e.g. ``{"rank": 8}``).
        output_dir: where to write the report files (default: the logger's directory; with
            no logger and no ``output_dir`` nothing is written).
        rate_window: trailing window of ``conflict/rate`` after the probe (default
            ``probe_steps``).
        trial_steps: the guarded switch (docs/concepts.md): after the probe, train each
            candidate this many steps from the probe's end state (weights, adapters,
            optimizer, schedule, strategy state, data stream), score it on held-out points and
            continue from the best one's end state. A ``CollocationDataModule`` is rewound
            and gives held-out points; any other data loader's batches are recorded during
            the first trial and replayed to the others (the same batches for every
            candidate, kept on the CPU and in checkpoints), and the score uses the probe's
            last 4 batches. Trial steps count against ``max_steps``. ``None``: the diagnosis
            alone decides.
        candidates: interventions tried besides the diagnosed one (names or strategy
            objects; default ``["none", "reweight"]``); ``none`` is always tried. Order:
            diagnosed first, then as listed (the diagnosis rank in the report).
        trial_score: ``"geomean"`` (geometric mean over losses of the unweighted held-out
            loss ratio after/before), ``"sum"`` (ratio of the unweighted sums) or
            ``"residual"`` (the first loss's ratio); lower is better.
        trial_margin: how much better another candidate must score to replace the
            diagnosis's first choice: it is kept unless the best score times
            ``1 + trial_margin`` is below its own. ``0`` (default): the best score wins.
            Short trials favour the candidate that changes least (a switch costs a transient
            that the trial sees and the rest of the run does not); a margin lets the trials
            veto a clearly worse choice without overruling the diagnosis on noise.
        reprobe_every: after the switch, profile again every this many steps (a window of
            ``reprobe_steps``, default ``min(probe_steps, reprobe_every)``) and step back to
            ``reweight`` or ``none`` when the rule no longer calls for more; logged as
            ``conflict/reprobe/*`` and listed in ``report.reprobes``. No window runs once the
            module's L-BFGS phase has started (its weights are frozen there).
        reprobe_steps: the re-probe window (and the escalation window).
        escalate: reweight first, and add adapters only if the conflict remains after
            reweighting (docs/concepts.md): a directional probe switches to the magnitude
            regime's intervention (``reweight``), profiles one window of ``reprobe_steps``
            (default ``probe_steps``) under it and, if that window is directional too,
            switches to the directional intervention (``adapters``). The report's
            ``strategy`` is the first switch; the escalation is a re-probe event with
            ``"escalated": True`` (logged as ``conflict/reprobe/escalated``). Without
            ``reprobe_every`` that window is the only re-probe and never steps back. Not
            with ``trial_steps``.

    Raises:
        ValueError: invalid arguments (here) or an unsuitable run (in ``setup``).
        TypeError: the module is not a :class:`~lightning_pinn.PINNModule` (in ``setup``).

    Example:
        >>> trainer = L.Trainer(max_steps=20_000, callbacks=[ConflictCallback(probe_steps=1000)])
        >>> trainer.fit(model, datamodule)  # doctest: +SKIP
        >>> trainer.callbacks[0].report.regime  # doctest: +SKIP
        'directional'
    """

    def __init__(
        self,
        probe_steps: int = 1000,
        auto_switch: bool = True,
        log_every_n_steps: int | None = None,
        tau_dir: float = DEFAULT_TAU_DIR,
        tau_mag: float = DEFAULT_TAU_MAG,
        interventions: Mapping[Regime | str, str | Strategy] | None = None,
        strategy_options: Mapping[str, Any] | None = None,
        output_dir: str | Path | None = None,
        rate_window: int | None = None,
        trial_steps: int | None = None,
        candidates: Sequence[str | Strategy] | None = None,
        trial_score: TrialScore = "geomean",
        trial_margin: float = 0.0,
        reprobe_every: int | None = None,
        reprobe_steps: int | None = None,
        escalate: bool = False,
        tau_cos: float = DEFAULT_TAU_COS,
    ) -> None:
        super().__init__()
        if isinstance(probe_steps, bool) or not isinstance(probe_steps, int) or probe_steps <= 0:
            raise ValueError(f"probe_steps must be a positive integer, got {probe_steps!r}")
        if probe_steps < MIN_FINITE_STEPS:
            raise ValueError(
                f"probe_steps={probe_steps} can never diagnose: a regime needs at least "
                f"{MIN_FINITE_STEPS} finite probe steps (pairwise cosines over time); pass "
                f"probe_steps >= {MIN_FINITE_STEPS} (the default is 1000)"
            )
        if log_every_n_steps is not None and (
            not is_integer(log_every_n_steps) or log_every_n_steps < 0
        ):
            raise ValueError(
                f"log_every_n_steps must be an integer >= 0 or None, got {log_every_n_steps!r}"
            )
        if rate_window is not None and (not is_integer(rate_window) or rate_window < 1):
            raise ValueError(f"rate_window must be an integer >= 1 or None, got {rate_window!r}")
        check_flag("auto_switch", auto_switch)  # "no" is truthy: it would switch
        validate_thresholds(tau_dir, tau_mag, tau_cos)
        check_trial_arguments(trial_steps, auto_switch, trial_score, trial_margin)
        window = check_reprobe_arguments(
            reprobe_every, reprobe_steps, probe_steps, auto_switch, escalate, trial_steps
        )
        self.escalate = escalate
        self.trial_steps = trial_steps
        self.candidates = check_candidates(candidates)
        self.trial_score: TrialScore = trial_score
        self.trial_margin = float(trial_margin)
        self.reprobe_every, self.reprobe_steps = reprobe_every, window
        self.probe_steps = probe_steps
        self.auto_switch = auto_switch
        self.log_every_n_steps = log_every_n_steps
        self.tau_dir = float(tau_dir)
        self.tau_mag = float(tau_mag)
        self.tau_cos = float(tau_cos)
        self.interventions = intervention_map(interventions)
        first, then = (
            intervention_name(self.interventions[r.value])
            for r in (Regime.MAGNITUDE, Regime.DIRECTIONAL)
        )
        if escalate and first == then:
            raise ValueError(
                f"escalate meets directional conflict with the magnitude regime's intervention "
                f"first and escalates to the directional one, but both are {first!r}: nothing "
                "to escalate; map them to different strategies or drop escalate"
            )
        self.strategy_options = dict(strategy_options or {})
        validate_strategy_options(self.strategy_options)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.rate_window = rate_window if rate_window is not None else probe_steps
        self.report: ConflictReport | None = None
        self.report_dir: Path | None = None
        self._probe: ProbeRecorder | None = None
        self._window: ProbeRecorder | None = None
        self._pending_state: dict[str, Any] | None = None
        self._pair_names: list[str] = []
        self._missed = False
        self._after = self._new_after()

    @property
    def state_key(self) -> str:
        return self._generate_state_key(probe_steps=self.probe_steps)

    @property
    def probe_done(self) -> bool:
        """Whether the probe window has ended (a report exists)."""
        return self.report is not None

    # -------------------------------------------------------------------------------- hooks
    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        module = check_run(trainer, pl_module, self.probe_steps, self._log_interval(trainer))
        if self.output_dir is not None:  # before the probe spends its steps (every rank)
            from lightning_pinn.run._checks import check_out_dir

            check_out_dir(self.output_dir, "ConflictCallback output_dir")
        check_alone(trainer, self)
        if self.auto_switch:
            check_interventions(module, self.interventions, self.strategy_options)
        if self.trial_steps is not None:
            check_trial(trainer, module, self, self.trial_steps)
        if self.escalate:
            assert self.reprobe_steps is not None
            check_escalation(trainer, module, self.probe_steps, self.reprobe_steps)
        self._after = self._new_after()
        # A new fit starts a new probe; resuming restores the state after setup.
        self.report = self.report_dir = self._probe = self._window = self._pending_state = None
        self._missed = False
        self._pair_names = pair_names(module.loss_names)
        self._held: deque[Any] = deque(maxlen=HELD_BATCHES)  # the probe's last batches (replay)

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._after.before_step(cast(PINNModule, pl_module))

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        pl_module = cast(PINNModule, pl_module)  # checked in setup
        record: StepRecord | None = pl_module.last_record
        if record is None or record.step < 1:
            return
        jac, step, finite = record.jacobian, record.step, record.finite
        if self.trial_steps is not None and self.report is None and step == 1:
            check_trial_losses(record.losses, pl_module.loss_names)
        # A deferred step's flag is a device tensor: no branch on it (no host read).
        update = record.update if isinstance(finite, Tensor) or finite else None
        in_trial = self._after.in_trial  # a trial begun before this step
        if self.report is None and step <= self.probe_steps:
            recorder = self._recorder(pl_module, jac, probe=True)
            stats = recorder.record(jac, update, finite=finite, index=step - 1)
            if self._records_held(trainer, step):
                self._held.append(to_cpu(batch))
            if step == self.probe_steps:
                self._finish_probe(trainer, pl_module)
        elif self.report is None:  # past the probe with nothing recorded (attached late)
            if not self._missed:
                rank_zero_warn(f"ConflictCallback: step {step} is past the probe; no report")
            self._missed = True
            return
        else:
            recorder = self._recorder(pl_module, jac, probe=False)
            stats = recorder.record(jac, update, finite=finite)
        every = self._log_interval(trainer)
        if every > 0 and step % every == 0 and finite:
            rate = recorder.conflict_rate()
            metrics = conflict_metrics(self._pair_names, pl_module.loss_names, stats, rate)
            pl_module.log_dict(metrics, on_step=True, on_epoch=False)
        if self.report is not None and (in_trial or step > self.probe_steps):
            record_ = (jac, update, finite, step)
            self.report = self._after.step(trainer, pl_module, self.report, record_, in_trial)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "probe_steps": self.probe_steps,
            "probe": self._probe.state_dict() if self._probe is not None else None,
            "window": self._window.state_dict() if self._window is not None else None,
            "report": self.report.to_dict() if self.report is not None else None,
            **self._after.state_dict(),
            "held": list(self._held),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("probe_steps") != self.probe_steps:
            raise ValueError(
                f"checkpoint was saved with probe_steps={state_dict.get('probe_steps')}, this "
                f"callback has probe_steps={self.probe_steps}"
            )
        report = state_dict.get("report")
        self.report = ConflictReport.from_dict(report) if report is not None else None
        # Buffers are rebuilt on the module's device at the next recorded step.
        self._probe = self._window = None
        self._pending_state = state_dict
        self._after = self._new_after()
        self._after.load_state_dict(state_dict, self.report)
        self._held = deque(state_dict.get("held", []), maxlen=HELD_BATCHES)

    # ------------------------------------------------------------------------------ helpers
    def _records_held(self, trainer: L.Trainer, step: int) -> bool:
        """Whether this probe step's batch joins the trials' scoring set: with trials on a
        data loader that cannot be rewound, the last :data:`HELD_BATCHES` of the probe."""
        return (
            self.trial_steps is not None
            and self.auto_switch
            and step > self.probe_steps - HELD_BATCHES
            and not rewindable(trainer.datamodule)
        )

    def _log_interval(self, trainer: L.Trainer) -> int:
        if self.log_every_n_steps is not None:
            return self.log_every_n_steps
        return int(trainer.log_every_n_steps)

    def _recorder(self, pl_module: PINNModule, jac: Tensor, *, probe: bool) -> ProbeRecorder:
        """The probe (or trailing-window) recorder on ``jac``'s device, created on first use."""
        name = "_probe" if probe else "_window"
        saved = (self._pending_state or {}).get("probe" if probe else "window")
        size = self.probe_steps if probe else self.rate_window
        rec = recorder_on(getattr(self, name), saved, size, pl_module.num_losses, jac, not probe)
        setattr(self, name, rec)
        return rec

    def _finish_probe(self, trainer: L.Trainer, pl_module: PINNModule) -> None:
        probe = self._probe
        assert probe is not None
        buffers = probe.buffers()
        stats = aggregate_window(**buffers, floor=probe.floor)
        self.report = build_report(
            stats,
            pl_module.loss_names,
            probe_steps=self.probe_steps,
            tau_dir=self.tau_dir,
            tau_mag=self.tau_mag,
            interventions={r: intervention_name(s) for r, s in self._first_switch().items()},
            tau_cos=self.tau_cos,
        )
        directory = report_directory(trainer, self.output_dir)
        if trainer.is_global_zero:
            self.report_dir = directory
            figure = write_report_files(
                directory, self.report, buffers, self._pair_names, pl_module.loss_names
            )
            # The step index Lightning's logger connector gives this batch's logged values.
            log_report(trainer.loggers, self.report, figure, step=max(pl_module.train_steps - 1, 0))
            rank_zero_info(self.report.to_markdown())
        if not self.report.valid:
            rank_zero_warn(f"ConflictCallback: no diagnosis, no switch: {self.report.reason}")
        elif self.auto_switch:
            self._after.start(trainer, pl_module, self.report, held=list(self._held))
        self._held.clear()

    def _first_switch(self) -> dict[str, str | Strategy]:
        """Regime → the intervention applied at the end of the probe: with ``escalate``,
        directional conflict is first met by the magnitude regime's intervention."""
        first = dict(self.interventions)
        if self.escalate:
            first[Regime.DIRECTIONAL.value] = first[Regime.MAGNITUDE.value]
        return first

    def _new_after(self) -> AfterProbe:
        return AfterProbe(
            interventions=self._first_switch(), options=self.strategy_options,
            escalate_to=self.interventions[Regime.DIRECTIONAL.value] if self.escalate else None,
            candidates=self.candidates, trial_steps=self.trial_steps,
            trial_score=self.trial_score, trial_margin=self.trial_margin,
            reprobe_every=self.reprobe_every,
            reprobe_steps=self.reprobe_steps, tau_dir=self.tau_dir, tau_mag=self.tau_mag,
            tau_cos=self.tau_cos,
            output_dir=self.output_dir,
        )  # fmt: skip
