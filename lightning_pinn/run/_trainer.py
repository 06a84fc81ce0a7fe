"""The Lightning pieces of a run: its logger and its ``Trainer``."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from lightning_pinn.run._config import TRAINER_DEFAULTS, LoggerName, RunConfig
from lightning_pinn.run._progress import progress_callbacks

__all__ = ["build_trainer", "make_logger"]


def make_logger(kind: LoggerName, out: str, name: str, seed: int) -> Logger | None:
    """Build the requested Lightning logger.

    W&B: without an API key (and no ``WANDB_MODE`` set) the run is logged offline, so training
    never fails for lack of network.

    Args:
        kind: ``"csv"``, ``"tensorboard"``, ``"wandb"`` or ``"none"``.
        out: root directory of the logs.
        name: run name.
        seed: the run's seed (part of the W&B run name).

    Returns:
        The logger, or ``None`` for ``"none"``.

    Raises:
        ImportError: ``"wandb"`` without the ``wandb`` package (says how to install it).
    """
    if kind == "none":
        return None
    if kind == "csv":
        return CSVLogger(out, name=name)
    if kind == "tensorboard":
        return TensorBoardLogger(out, name=name)
    try:
        import wandb  # noqa: F401  (optional extra)
    except ImportError as err:
        raise ImportError(
            "--logger wandb needs the wandb package: pip install 'lightning_pinn[wandb]'"
        ) from err
    offline = os.environ.get("WANDB_MODE") in ("offline", "disabled") or (
        "WANDB_MODE" not in os.environ and not os.environ.get("WANDB_API_KEY")
    )
    Path(out).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=os.environ.get("WANDB_PROJECT", "lightning_pinn"),
        name=f"{name}-seed{seed}",
        save_dir=out,
        offline=offline,
    )


def build_trainer(cfg: RunConfig, callbacks: list[Callback], logger: Logger | None) -> L.Trainer:
    """The Lightning ``Trainer`` of a run: :data:`TRAINER_DEFAULTS` with the run's budget,
    validation interval, devices and progress display (a line per 5 % of the run where stdout
    is not a terminal)."""
    options = {
        **TRAINER_DEFAULTS,
        "max_steps": cfg.max_steps,
        "val_check_interval": cfg.effective_val_every,
        "log_every_n_steps": cfg.log_every_n_steps,
    }
    return L.Trainer(
        **options,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        precision=cfg.precision,
        logger=logger if logger is not None else False,
        callbacks=[*callbacks, *progress_callbacks(cfg.progress_bar)],
        enable_progress_bar=cfg.progress_bar,
        enable_checkpointing=cfg.checkpoint,
        deterministic=cfg.deterministic,
    )
