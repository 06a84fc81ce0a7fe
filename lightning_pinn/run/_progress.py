"""Progress display that stays readable where the output is not a terminal.

On a terminal, Lightning's TQDM bar redraws one line in place. Written to a log file (CI,
``nohup``, a job scheduler), every redraw becomes text: thousands of bar updates per run.
:class:`LineProgressBar` prints one plain line every few percent of the run instead, and one
summary line at the end; :func:`progress_callbacks` picks it when stdout is not a TTY.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import Callback, ProgressBar
from typing_extensions import override

__all__ = ["LineProgressBar", "progress_callbacks"]


class LineProgressBar(ProgressBar):
    """One line of text every ``every`` training steps and a summary line when training ends.

    Args:
        every: steps between lines; by default the run is split into ``lines`` lines.
        lines: lines per run when ``every`` is not given.
        stream: where to write (default: ``sys.stdout`` at the time of writing).

    Raises:
        ValueError: ``every`` or ``lines`` below 1.

    Example::

        trainer = L.Trainer(max_steps=2000, callbacks=[LineProgressBar()])
        # step 100/2000 (5%)  loss 3.214e-02  4.1 s
        # ...
        # training done: 2000 steps in 80.2 s, loss 1.032e-04, val/rel_l2 2.341e-02
    """

    def __init__(self, every: int | None = None, lines: int = 20, stream: TextIO | None = None):
        super().__init__()
        if every is not None and every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every!r}")
        if lines < 1:
            raise ValueError(f"lines must be a positive integer, got {lines!r}")
        self.every = every
        self.lines = lines
        self.stream = stream
        self._enabled = True
        self._start = 0.0
        self._last: dict[str, float] = {}  # latest values seen, for the summary line

    @override
    def disable(self) -> None:
        self._enabled = False

    @override
    def enable(self) -> None:
        self._enabled = True

    def _interval(self, trainer: L.Trainer) -> int:
        if self.every is not None:
            return self.every
        return max(1, trainer.max_steps // self.lines) if trainer.max_steps > 0 else 100

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def _metrics(self, trainer: L.Trainer, outputs: Any = None) -> str:
        """The step's loss (``training_step``'s ``outputs``, else the logged ``loss``; the last
        one seen when ``outputs`` is ``None``) and the latest validation error. Reading them
        syncs with the device: only when a line is printed."""
        values = {"val/rel_l2": trainer.callback_metrics.get("val/rel_l2")}
        if outputs is not None:  # a training step (the summary keeps the last step's loss)
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else None
            values["loss"] = loss if loss is not None else trainer.callback_metrics.get("loss")
        for key, value in values.items():
            if value is not None:
                self._last[key] = float(value)
        shown = [key for key in ("loss", "val/rel_l2") if key in self._last]
        return ", ".join(f"{key} {self._last[key]:.3e}" for key in shown)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step, total = trainer.global_step, trainer.max_steps
        if not (self._enabled and trainer.is_global_zero):
            return
        if step % self._interval(trainer) == 0:
            share = f" ({100 * step / total:.0f}%)" if total > 0 else ""
            elapsed = time.perf_counter() - self._start
            self._write(
                f"step {step}/{total}{share}  {self._metrics(trainer, outputs)}  {elapsed:.1f} s"
            )
        elif step == total:
            self._metrics(trainer, outputs)  # the final loss, for the summary line

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        elapsed = time.perf_counter() - self._start
        metrics = self._metrics(trainer)
        self._write(
            f"training done: {trainer.global_step} steps in {elapsed:.1f} s"
            + (f", {metrics}" if metrics else "")
        )


def progress_callbacks(enabled: bool, stream: TextIO | None = None) -> list[Callback]:
    """The progress display of a run: ``[]`` keeps Lightning's TQDM bar (a terminal, or the
    display is off); ``[LineProgressBar()]`` where ``stream`` (default stdout) is not a TTY."""
    stream = stream if stream is not None else sys.stdout
    if not enabled or stream.isatty():
        return []
    return [LineProgressBar()]
