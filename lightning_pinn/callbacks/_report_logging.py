"""Write a :class:`ConflictReport` to disk and send it to Lightning loggers (W&B: table, image)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor

from lightning_pinn.diagnostics import ConflictReport, ProbeRecorder, StepStatistics, plot_probe

__all__ = [
    "LOSS_COLUMNS",
    "PAIR_COLUMNS",
    "TRIAL_COLUMNS",
    "REPORT_FIGURE",
    "REPORT_JSON",
    "REPORT_MARKDOWN",
    "conflict_metrics",
    "log_report",
    "publish_trial_report",
    "recorder_on",
    "report_directory",
    "report_scalars",
    "write_report_files",
    "write_report_text",
]

REPORT_JSON = "conflict_report.json"
REPORT_MARKDOWN = "conflict_report.md"
REPORT_FIGURE = "conflict_probe.png"

PAIR_COLUMNS = ["pair", "conflict_rate", "late_conflict_rate", "mean_cosine", "late_mean_cosine"]
TRIAL_COLUMNS = ["candidate", "score", "diagnosis_rank", "chosen"]
LOSS_COLUMNS = ["loss", "median_norm", "update_conflict_share", "mean_update_cosine"]


def write_report_files(
    directory: Path | None,
    report: ConflictReport,
    buffers: dict[str, Tensor],
    pair_names: Sequence[str],
    loss_names: Sequence[str],
) -> Path | None:
    """Write ``conflict_report.json``, ``conflict_report.md`` and ``conflict_probe.png``.

    Args:
        directory: target directory (created if missing); ``None`` writes nothing (the
            report stays in memory) and says so once.
        report: the report.
        buffers: the probe's ``cosines [T, npairs]``, ``norms [T, K]``, ``finite [T]``.
        pair_names: pair labels.
        loss_names: loss labels.

    Returns:
        The path of the PNG figure, or None when nothing was written.
    """
    if directory is None:
        rank_zero_info(
            "ConflictCallback: no logger and no output_dir; the report stays in memory "
            "(callback.report) and no file is written"
        )
        return None
    write_report_text(directory, report)
    path = directory / REPORT_FIGURE
    plot_probe(
        buffers["cosines"],
        buffers["norms"],
        buffers["finite"],
        pair_names=pair_names,
        loss_names=loss_names,
        tau_dir=report.tau_dir,
        tau_mag=report.tau_mag,
        title=f"Gradient conflict probe: {report.regime} → {report.strategy}",
        path=path,
    )
    return path


def write_report_text(directory: Path, report: ConflictReport) -> None:
    """(Re)write ``conflict_report.json`` and ``conflict_report.md`` (after the trials)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / REPORT_JSON).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (directory / REPORT_MARKDOWN).write_text(report.to_markdown())


def report_scalars(report: ConflictReport) -> dict[str, float]:
    """The report's numbers as flat ``conflict/report/...`` scalars for any logger."""
    out = {
        "conflict/report/median_imbalance": report.median_imbalance,
        "conflict/report/update_conflict_share": report.update_conflict_share,
    }
    for p in report.pairs:
        out[f"conflict/report/rate/{p.name}"] = p.conflict_rate
        out[f"conflict/report/late_rate/{p.name}"] = p.late_conflict_rate
        out[f"conflict/report/mean_cos/{p.name}"] = p.mean_cosine
    for s in report.losses:
        out[f"conflict/report/median_norm/{s.name}"] = s.median_norm
    if report.mean_alignment is not None and report.late_mean_alignment is not None:
        out["conflict/report/mean_alignment"] = report.mean_alignment
        out["conflict/report/late_mean_alignment"] = report.late_mean_alignment
    for r in report.trial:
        out[f"conflict/trial/score/{r.candidate}"] = r.score
    if report.trial:
        out["conflict/trial/steps_spent"] = float(report.trial_steps_spent)
    return out


def _log_wandb(logger: Logger, report: ConflictReport, figure: Path | None, step: int) -> None:
    import wandb

    pairs = wandb.Table(
        columns=PAIR_COLUMNS,
        data=[
            [p.name, p.conflict_rate, p.late_conflict_rate, p.mean_cosine, p.late_mean_cosine]
            for p in report.pairs
        ],
    )
    losses = wandb.Table(
        columns=LOSS_COLUMNS,
        data=[
            [s.name, s.median_norm, s.update_conflict_share, s.mean_update_cosine]
            for s in report.losses
        ],
    )
    payload: dict = {
        "conflict/report_table": pairs,
        "conflict/report_losses": losses,
        "trainer/global_step": step,
    }
    if report.trial:
        payload["conflict/trial_table"] = wandb.Table(
            columns=TRIAL_COLUMNS,
            data=[[r.candidate, r.score, r.rank, r.chosen] for r in report.trial],
        )
    if figure is not None and figure.exists():
        payload["conflict/probe_figure"] = wandb.Image(str(figure), caption=report.reason)
    experiment = logger.experiment  # type: ignore[attr-defined]
    experiment.log(payload)
    experiment.summary["conflict/regime"] = report.regime
    experiment.summary["conflict/strategy"] = report.strategy
    experiment.summary["conflict/reason"] = report.reason


def log_report(
    loggers: Iterable[Logger], report: ConflictReport, figure: Path | None, *, step: int
) -> None:
    """Log the report to every logger; a failing logger only warns (training goes on).

    Every logger receives :func:`report_scalars` and the regime and strategy as
    hyperparameters; a ``WandbLogger`` also receives ``conflict/report_table`` (a
    ``wandb.Table`` of the pair statistics), ``conflict/report_losses`` (per-loss table),
    ``conflict/probe_figure`` (the figure as a ``wandb.Image``) and the regime, strategy and
    reason in the run summary.
    """
    scalars = report_scalars(report)
    for logger in loggers:
        name = type(logger).__name__
        try:
            logger.log_metrics(scalars, step=step)
            logger.log_hyperparams(
                {"conflict_regime": report.regime, "conflict_strategy": report.strategy}
            )
        except Exception as err:  # a logger must never stop training
            rank_zero_warn(f"ConflictCallback: logging the report to {name} failed: {err!r}")
        if isinstance(logger, WandbLogger):
            try:
                _log_wandb(logger, report, figure, step)
            except Exception as err:  # W&B absent, offline trouble, API change: warn only
                rank_zero_warn(
                    f"ConflictCallback: logging the report table/figure to W&B failed ({err!r}); "
                    "the report files in the log directory are unaffected"
                )


def report_directory(trainer: L.Trainer, output_dir: Path | None) -> Path | None:
    """``output_dir``, else the logger's directory, else None (write nothing)."""
    if output_dir is not None:
        return output_dir
    if not trainer.loggers:  # without a logger, trainer.log_dir is the working directory
        return None
    # trainer.log_dir is a collective under DDP (a broadcast): every rank must ask.
    log_dir = trainer.log_dir
    return Path(log_dir) if log_dir else None


def conflict_metrics(
    pair_names: Sequence[str],
    loss_names: Sequence[str],
    stats: StepStatistics,
    rate: Tensor,
) -> dict[str, Tensor]:
    """The logged conflict scalars of one step (cosines, rates, imbalance, alignment, a_k)."""
    metrics: dict[str, Tensor] = {}
    for p, name in enumerate(pair_names):
        metrics[f"conflict/cos/{name}"] = stats.cosines[p]
        metrics[f"conflict/rate/{name}"] = rate[p]
    metrics["conflict/imbalance"] = stats.imbalance
    metrics["conflict/alignment"] = stats.alignment
    for k, name in enumerate(loss_names):
        metrics[f"conflict/update_cos/{name}"] = stats.update_cosines[k]
    return metrics


def publish_trial_report(
    trainer: L.Trainer, report: ConflictReport, directory: Path | None
) -> None:
    """After the trials: rewrite the report's JSON and markdown, log it (rank 0 only)."""
    if not trainer.is_global_zero:
        return
    if directory is not None:
        write_report_text(directory, report)
    log_report(trainer.loggers, report, None, step=max(trainer.global_step - 1, 0))
    rank_zero_info(report.to_markdown())


def recorder_on(
    rec: ProbeRecorder | None,
    saved: dict | None,
    capacity: int,
    num_losses: int,
    jac: Tensor,
    ring: bool,
) -> ProbeRecorder:
    """``rec`` on ``jac``'s device; if None, rebuilt from ``saved`` (a checkpoint) or new."""
    if rec is None and saved is not None:
        return ProbeRecorder.from_state_dict(saved, device=jac.device)
    if rec is None:
        return ProbeRecorder(capacity, num_losses, device=jac.device, ring=ring)
    if rec.device != jac.device:
        rec.to(jac.device)
    return rec
