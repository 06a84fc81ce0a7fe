"""The Lightning pieces of a run: its logger and its ``Trainer``."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from lightning_pinn.run._config import TRAINER_DEFAULTS, LoggerName, RunConfig
from lightning_pinn.run._progress import progress_callbacks

__all__ = [
    "AtomicCheckpointIO",
    "build_trainer",
    "claim_version_dir",
    "make_logger",
    "quiet_lightning",
    "resumed_version_dir",
]

_VERSION = re.compile(r"version_(\d+)")
_RUN_DIR_ENV = "LIGHTNING_PINN_RUN_DIR"  # rank 0's version folder, for the DDP ranks it starts


# Lightning's notices that do not apply to a PINN run: collocation batches come from an
# in-memory sampler (no workers to add); manual optimisation saves the state after the step,
# which is what a resumed run needs; and Lightning 2.6's combined loader uses torch's
# deprecated ``LeafSpec`` on every fit and validate (its own deprecation, nothing a user can do).
_LIGHTNING_NOISE = (
    ".*does not have many workers.*",
    ".*no pre-optimization state was saved.*",
    ".*isinstance.treespec, LeafSpec.*",
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence :data:`_LIGHTNING_NOISE` (and only it) around ``fit`` / ``validate``."""
    with warnings.catch_warnings():
        for message in _LIGHTNING_NOISE:
            warnings.filterwarnings("ignore", message)
        yield


def claim_version_dir(root: str | Path) -> Path:
    """Create ``root/version_N`` for the first free ``N`` and return it.

    The folder is created with ``os.mkdir``, which fails when it exists, and the next ``N`` is
    tried: two processes logging into one ``root`` at the same time never share a folder
    (counting the existing folders and creating one later would let both pick the same ``N``).

    Raises:
        OSError: ``root`` cannot be created (e.g. a path under a regular file).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for d in os.listdir(root) if (m := _VERSION.fullmatch(d))]
    n = max(taken, default=-1) + 1
    while True:
        path = root / f"version_{n}"
        try:
            os.mkdir(path)
        except FileExistsError:
            n += 1
            continue
        return path


def resumed_version_dir(resume: str | Path | None) -> Path | None:
    """The ``.../version_N`` folder a checkpoint at ``.../version_N/checkpoints/X.ckpt`` was
    saved in (a resumed run continues there), or ``None``."""
    if resume is None:
        return None
    ckpt_dir = Path(resume).resolve().parent
    if ckpt_dir.name == "checkpoints" and _VERSION.fullmatch(ckpt_dir.parent.name):
        return ckpt_dir.parent
    return None


def _version_dir(out: str, name: str, resume: str | None) -> Path:
    """The run's folder: the checkpoint's when resuming, rank 0's on the other DDP ranks, a
    newly claimed ``OUT/NAME/version_N`` otherwise."""
    if (resumed := resumed_version_dir(resume)) is not None:
        return resumed
    if rank_zero_only.rank != 0 and os.environ.get(_RUN_DIR_ENV):
        return Path(os.environ[_RUN_DIR_ENV])
    path = claim_version_dir(Path(out) / name)
    os.environ[_RUN_DIR_ENV] = str(path)  # inherited by the ranks Lightning launches
    return path


class _AppendingWriter(ExperimentWriter):
    """A CSV writer that continues an existing ``metrics.csv`` (a resumed run) instead of
    deleting it, as Lightning's writer does."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class _RunCSVLogger(CSVLogger):
    """``CSVLogger`` whose metrics file survives a resume into the same version folder."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file next to the target, then moved into place with
    ``os.replace``: a run killed while saving leaves the previous checkpoint intact instead of a
    truncated one."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def make_logger(
    kind: LoggerName, out: str, name: str, seed: int, *, resume: str | None = None
) -> Logger | None:
    """Build the requested Lightning logger.

    CSV and TensorBoard log into ``OUT/NAME/version_N``, a folder claimed atomically
    (:func:`claim_version_dir`), so concurrent runs sharing ``out`` never share a folder; a run
    resumed from ``.../version_N/checkpoints/X.ckpt`` continues in ``.../version_N``.
    W&B: without an API key (and no ``WANDB_MODE`` set) the run is logged offline, so training
    never fails for lack of network.

    Args:
        kind: ``"csv"``, ``"tensorboard"``, ``"wandb"`` or ``"none"``.
        out: root directory of the logs.
        name: run name.
        seed: the run's seed (part of the W&B run name).
        resume: the checkpoint the run resumes from, if any.

    Returns:
        The logger, or ``None`` for ``"none"``.

    Raises:
        ImportError: ``"wandb"`` without the ``wandb`` package (says how to install it).
        OSError: the log folder cannot be created.
    """
    if kind == "none":
        return None
    if kind in ("csv", "tensorboard"):
        run_dir = _version_dir(out, name, resume)
        version = int(run_dir.name.removeprefix("version_"))
        save_dir, run_name = str(run_dir.parent.parent), run_dir.parent.name
        if kind == "csv":
            return _RunCSVLogger(save_dir, name=run_name, version=version)
        return TensorBoardLogger(save_dir, name=run_name, version=version)
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
    validation interval, devices, progress display (a line per 5 % of the run where stdout
    is not a terminal) and checkpoints saved atomically (:class:`AtomicCheckpointIO`)."""
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
        plugins=[AtomicCheckpointIO()],
    )
