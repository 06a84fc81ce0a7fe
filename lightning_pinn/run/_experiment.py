"""One training run of a registered problem: probe, diagnose, switch, train, report.

Used by ``lightning-pinn run`` and by the benchmark (each benchmark cell is one call).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger, WandbLogger

from lightning_pinn import problems
from lightning_pinn.callbacks import ConflictCallback
from lightning_pinn.callbacks._switching import intervention_map
from lightning_pinn.callbacks._trial import max_discarded_steps
from lightning_pinn.module import PINNModule
from lightning_pinn.run._config import RunConfig
from lightning_pinn.run._plots import save_prediction
from lightning_pinn.run._recipes import escalation_room, lbfgs_phase
from lightning_pinn.run._threads import ThreadGovernor, default_threads
from lightning_pinn.run._trainer import build_trainer, make_logger, quiet_lightning

__all__ = ["LossCurve", "ValidationCurve", "format_summary", "run_experiment"]


class LossCurve(Callback):
    """Records ``(step, total loss, per-loss values)`` every ``log_every_n_steps`` steps."""

    def __init__(self) -> None:
        self.points: list[list[float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        n = trainer.log_every_n_steps
        if n > 0 and pl_module.train_steps % n == 0 and pl_module.last_losses is not None:
            values = pl_module.last_losses.tolist()
            self.points.append([pl_module.train_steps, sum(values), *values])


class ValidationCurve(Callback):
    """Records ``(step, rel L2)`` after every validation during training: one run at a long
    budget also gives the errors at every shorter budget (the data, the schedule and the
    probe depend on the step index only)."""

    def __init__(self) -> None:
        self.points: list[list[float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # after the module's own epoch-end hook has logged the metric
        value = trainer.callback_metrics.get("val/rel_l2")
        if value is not None and not trainer.sanity_checking and trainer.state.fn == "fit":
            self.points.append([pl_module.train_steps, float(value)])


class _StartStep(Callback):
    """The step training starts from: 0, or the resumed checkpoint's step."""

    def __init__(self) -> None:
        self.step: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.step = trainer.global_step


def _log_dir(trainer: L.Trainer, cfg: RunConfig, name: str) -> Path:
    if trainer.log_dir is not None and trainer.loggers:
        return Path(trainer.log_dir)
    return Path(cfg.out) / name


@contextlib.contextmanager
def _cleared_on_early_failure(out: Path, name: str, module: PINNModule) -> Iterator[None]:
    """Remove the folders the block made if it fails before the first training step.

    Some checks can only run once the logger has claimed its folder (``ConflictCallback``
    checks the module in ``setup``, Lightning checks ``--precision`` when the Trainer is
    built). A run they refuse should leave nothing behind: ``OUT`` or ``OUT/NAME`` if this run
    made them, else the entries of ``OUT/NAME`` that appeared meanwhile (the claimed
    ``version_N``). Nothing that existed before is touched, and a run that trained keeps all.
    """
    run = out / name
    fresh = next((p for p in (out, run) if not p.exists()), None)
    before = set(run.iterdir()) if fresh is None and run.is_dir() else set()
    try:
        yield
    except BaseException:
        if module.train_steps == 0:
            now = set(run.iterdir()) if run.is_dir() else set()
            new = [fresh] if fresh is not None else now - before
            for path in new:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def _own_run_dir(logger: Logger | None, cfg: RunConfig, name: str) -> Path | None:
    """Where the report, summary and figures go when the logger has no per-run directory.

    No logger: ``OUT/NAME``. W&B: ``OUT/PROJECT/RUN_ID`` (next to the checkpoints), so the runs
    of a sweep sharing one ``--out`` never overwrite each other. CSV/TensorBoard: ``None``
    (their versioned ``log_dir`` is used).
    """
    if logger is None:
        return Path(cfg.out) / name
    if isinstance(logger, WandbLogger):
        return Path(cfg.out) / str(logger.name) / str(logger.experiment.id)  # starts the run
    return None


def _module_steps(cfg: RunConfig) -> int:
    """The training steps the module can count: ``max_steps`` less the most the losing trials
    of the guarded switch can take (they count against ``max_steps``), so a recipe's L-BFGS
    ``after_fraction`` still places the phase inside the run."""
    if cfg.trial_steps is None:
        return cfg.max_steps
    discarded = max_discarded_steps(
        cfg.trial_steps, cfg.candidates, intervention_map(cfg.interventions)
    )
    return max(2, cfg.max_steps - discarded)


def _escalation_window(cfg: RunConfig, module: PINNModule) -> int | None:
    """The escalation window: ``escalate_steps``, else the probe window shortened so that it
    ends before the L-BFGS phase and the run (a window that cannot is left for the callback's
    setup to refuse, with its message)."""
    if not cfg.escalate:
        return None
    if cfg.escalate_steps is not None:
        return cfg.escalate_steps
    probe = cfg.effective_probe_steps
    after = module.lbfgs.after if module.lbfgs is not None else None
    room = escalation_room(cfg.max_steps, probe, after)
    return min(probe, room) if room >= 1 else probe


def _reprobe_window(cfg: RunConfig, module: PINNModule) -> int | None:
    """The callback's ``reprobe_steps``: the escalation window (if any), no longer than
    ``reprobe_every``; None leaves the callback's default (``min(probe, reprobe_every)``)."""
    window = _escalation_window(cfg, module)
    if window is not None and cfg.reprobe_every is not None:
        return min(window, cfg.reprobe_every)
    return window


def _phase_options(cfg: RunConfig, problem: problems.Problem) -> dict[str, Any]:
    """The trunk, rule, schedule and L-BFGS phase of ``cfg`` as module arguments (only those
    that are set: an unset one leaves the module's default, so a config without them trains
    exactly as before). A reweighting rule named in ``module_options`` wins over ``cfg.rule``."""
    options: dict[str, Any] = {}
    if cfg.trunk is not None:
        # the spec, built by the module: checkpoints keep it (load_from_checkpoint rebuilds it)
        options["trunk"] = dict(cfg.trunk)
    if cfg.rule is not None and not {"reweighting", "rule"} & set(cfg.module_options):
        rule = dict(cfg.rule)
        if "name" not in rule:
            raise ValueError(f"rule needs a name, e.g. {{'name': 'gradnorm'}}, got {rule}")
        options["reweighting"] = rule.pop("name")
        if rule and "reweighting_options" not in cfg.module_options:
            options["reweighting_options"] = rule
    if cfg.schedule is not None:
        options["schedule"] = dict(cfg.schedule)
    if cfg.lbfgs is not None:
        options["lbfgs"] = lbfgs_phase(cfg.lbfgs, _module_steps(cfg))
    return options


def run_experiment(cfg: RunConfig) -> dict[str, Any]:
    """Train ``cfg.problem`` and return a JSON-ready summary.

    The summary holds the final losses, ``rel_l2`` (pooled, and per field for systems), the
    conflict report (when probed), the wall time, coefficient errors of inverse problems, the
    log directory and the last checkpoint.
    """
    cfg.validate()
    # Threads given: fixed. Not given: run's default, lowered while other work shares the
    # cores (ThreadGovernor).
    threads = cfg.threads if cfg.threads is not None else default_threads()
    torch.set_num_threads(threads)
    problem = problems.get(cfg.problem, **cfg.problem_options)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    start_strategy = "none" if cfg.strategy == "auto" else cfg.strategy
    given = {
        "lr": cfg.lr,
        "strategy": start_strategy,
        "lr_decay_rate": cfg.lr_decay_rate,
        "lr_decay_steps": cfg.lr_decay_steps,
        **_phase_options(cfg, problem),
    }
    clash = [key for key in given if key in cfg.module_options]
    if clash:
        flags = ", ".join(f"{key} -> --{key.replace('_', '-')}" for key in clash)
        raise ValueError(
            f"--module-options sets {clash}, which the run sets from its own flags or recipe "
            f"keys; give them there ({flags})"
        )
    module = problem.module(**given, **cfg.module_options)
    if module.num_losses < 2 and cfg.trial_steps is not None:
        raise ValueError(
            f"trial_steps={cfg.trial_steps} compares strategies after a conflict probe, but "
            f"{problem.name} has one loss ({list(module.loss_names)}): nothing conflicts; "
            "drop --trial-steps"
        )
    probe = cfg.effective_probe_steps
    if module.num_losses >= 2 and module.lbfgs is not None and module.lbfgs.after < probe:
        raise ValueError(  # before any folder is made; ConflictCallback.setup checks it too
            f"the L-BFGS phase starts after step {module.lbfgs.after}, inside the probe of "
            f"{probe} steps, which profiles first-order steps: lower --probe-steps to at most "
            f"{module.lbfgs.after} or start L-BFGS later (--lbfgs)"
        )
    conflict = (  # before any folder: its arguments are checked here
        None
        if module.num_losses < 2
        else ConflictCallback(
            probe_steps=cfg.effective_probe_steps,
            auto_switch=cfg.switch and cfg.strategy == "auto",
            log_every_n_steps=cfg.log_every_n_steps,
            **cfg.thresholds,
            interventions=cfg.interventions,
            trial_steps=cfg.trial_steps,
            candidates=cfg.candidates,
            trial_score=cfg.trial_score,
            trial_margin=cfg.trial_margin,
            escalate=cfg.escalate,
            reprobe_every=cfg.reprobe_every,
            reprobe_steps=_reprobe_window(cfg, module),
        )
    )
    datamodule = problem.datamodule(seed=cfg.seed, points=cfg.points, resample=cfg.resample)
    name = cfg.name or problem.name
    with _cleared_on_early_failure(Path(cfg.out), name, module):  # no folder left by a refusal
        logger = make_logger(cfg.logger, cfg.out, name, cfg.seed, resume=cfg.resume)
        run_dir = _own_run_dir(logger, cfg, name)
        if run_dir is not None:  # fail on an unusable --out before training, not after
            run_dir.mkdir(parents=True, exist_ok=True)
            if conflict is not None:
                conflict.output_dir = run_dir
        curve = LossCurve()
        val_curve = ValidationCurve()
        start = _StartStep()
        # One loss (every condition imposed exactly): no pair to compare, so no probe; `auto`
        # then trains as it starts, with strategy none.
        given = (conflict, curve, val_curve, start)
        callbacks: list[Callback] = [c for c in given if c is not None]
        governor = ThreadGovernor(threads) if cfg.threads is None and threads > 1 else None
        if governor is not None:
            callbacks.append(governor)
        ckpt = None
        if cfg.checkpoint:
            ckpt = ModelCheckpoint(
                dirpath=None if logger is not None else str(Path(cfg.out) / name / "checkpoints"),
                save_last=True,
                save_top_k=0,
                every_n_train_steps=cfg.effective_checkpoint_every,
                enable_version_counter=False,  # a resumed run overwrites last.ckpt, no last-v1
            )
            callbacks.append(ckpt)
        trainer = build_trainer(cfg, callbacks, logger)
        t0 = time.perf_counter()
        with quiet_lightning():
            trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.resume)
    wall = time.perf_counter() - t0
    with quiet_lightning():
        val = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    log_dir = run_dir if run_dir is not None else _log_dir(trainer, cfg, name)
    outputs = _save_outputs(trainer, module, problem, log_dir, conflict, logger, cfg.plots)
    summary: dict[str, Any] = {
        "problem": problem.name,
        "strategy": cfg.strategy,
        "final_strategy": module.strategy_name,
        "seed": cfg.seed,
        "recipe": cfg.recipe,
        "steps": module.train_steps,
        "max_steps": cfg.max_steps,
        "resumed_from_step": start.step if cfg.resume is not None else None,
        "threads": torch.get_num_threads(),
        "thread_changes": governor.changes if governor is not None else [],
        "wall_time_s": wall,
        "rel_l2": float(val["val/rel_l2"]),
        "rel_l2_fields": {
            k.removeprefix("val/rel_l2/"): float(v)
            for k, v in val.items()
            if k.startswith("val/rel_l2/")
        },
        "final_losses": dict(zip(module.loss_names, module.last_losses.tolist(), strict=True))
        if module.last_losses is not None
        else {},
        "final_weights": dict(module.named_loss_weights()),
        "coefficients": {
            n: {"value": float(p.detach()), "true": problem.true_values().get(n)}
            for n, p in module.coefficients.items()
        },
        "skipped_steps": module.skipped_steps,
        "report": conflict.report.to_dict()
        if conflict is not None and conflict.report is not None
        else None,
        "loss_curve": curve.points,
        "val_curve": val_curve.points,
        "log_dir": str(log_dir),
        "last_checkpoint": (ckpt.last_model_path or None) if ckpt is not None else None,
        **outputs,
    }
    if trainer.is_global_zero:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _save_outputs(
    trainer: L.Trainer,
    module: Any,
    problem: problems.Problem,
    log_dir: Path,
    conflict: ConflictCallback | None,
    logger: Logger | None,
    plots: bool = True,
) -> dict[str, str | None]:
    """Rank 0: write ``prediction.png`` and ``error_field.npz`` next to the report, log the
    figure and the final rel L2 to W&B (guarded). Returns the paths for the summary."""
    out: dict[str, str | None] = {
        "prediction_figure": None,
        "error_field": None,
        "conflict_report": None,
    }
    report_dir = conflict.report_dir if conflict is not None else None
    if report_dir is not None and (report_dir / "conflict_report.md").exists():
        out["conflict_report"] = str(report_dir / "conflict_report.md")
    if not (plots and trainer.is_global_zero):
        return out
    try:
        paths = save_prediction(module, problem, log_dir)
    except Exception as err:  # a plot must never lose a finished run
        warnings.warn(f"could not save the prediction figure: {err!r}", stacklevel=2)
        return out
    out["prediction_figure"] = str(paths["figure"])
    out["error_field"] = str(paths["error_field"])
    _log_wandb_outputs(logger, paths["figure"], trainer)
    return out


def _log_wandb_outputs(logger: Logger | None, figure: Path, trainer: L.Trainer) -> None:
    """Log the prediction figure and the final rel L2 to W&B (no-op for other loggers)."""
    if not isinstance(logger, WandbLogger):
        return
    try:
        import wandb  # optional extra; a WandbLogger exists only when it is installed

        experiment = logger.experiment
        rel_l2 = trainer.callback_metrics.get("val/rel_l2")
        payload: dict[str, Any] = {"prediction/figure": wandb.Image(str(figure))}
        if rel_l2 is not None:
            payload["final/rel_l2"] = float(rel_l2)
            experiment.summary["final/rel_l2"] = float(rel_l2)
        experiment.log(payload)
    except Exception as err:  # W&B trouble must not fail a finished run
        warnings.warn(f"logging the prediction figure to W&B failed: {err!r}", stacklevel=2)


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short human-readable summary of :func:`run_experiment`'s result."""
    lines = [
        f"problem: {summary['problem']}   strategy: {summary['strategy']} -> "
        f"{summary['final_strategy']}   steps: {summary['steps']}   "
        f"time: {summary['wall_time_s']:.1f} s",
        "final losses: " + ", ".join(f"{k}={v:.3e}" for k, v in summary["final_losses"].items()),
        f"relative L2 error: {summary['rel_l2']:.4e}",
    ]
    for field, value in summary["rel_l2_fields"].items():
        lines.append(f"  {field}: {value:.4e}")
    for name, c in summary["coefficients"].items():
        true = "" if c["true"] is None else f" (true {c['true']:.6g})"
        lines.append(f"coefficient {name}: {c['value']:.6g}{true}")
    if summary["report"] is not None:
        regime, advice = summary["report"]["regime"], summary["report"]["strategy"]
        if summary["strategy"] == "auto":
            lines.append(f"regime: {regime} -> {advice}")
        else:  # a fixed strategy (e.g. the recipe's): the probe reported, nothing switched
            lines.append(
                f"regime: {regime} (the diagnosis suggests {advice}; not applied: the strategy "
                f"is fixed to {summary['strategy']}, use --strategy auto to switch)"
            )
    if summary.get("prediction_figure"):
        lines.append(f"prediction figure: {summary['prediction_figure']}")
    lines.append(f"logs: {summary['log_dir']}")
    if summary["last_checkpoint"]:
        lines.append(f"last checkpoint: {summary['last_checkpoint']}")
    return "\n".join(lines)
