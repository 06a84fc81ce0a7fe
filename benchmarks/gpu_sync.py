"""GPU check of issue 14, item 5: host synchronisations per training step, and steps/s.

    python benchmarks/gpu_sync.py [--steps 300] [--window 100]

Trains Burgers (``none``, tanh 64x4, the problem's points) on CUDA twice: with
``finite_check="every_step"`` (one host read per step) and ``"deferred"`` (the default on
CUDA). During ``--window`` steps in the middle of each run, ``torch.cuda.set_sync_debug_mode``
turns every synchronising CUDA call into a warning, which is counted; the steps between two
logging steps and away from checks are the hot path. Prints syncs per step and steps/s for
both, and their ratio. Without CUDA it says so and exits 0. The ``none``/plain ratio on the
GPU is ``benchmarks/step_cost.py --accelerator cuda`` (``gpu_check.sh`` runs both).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import lightning as L
import torch

from lightning_pinn import problems


class _Window(L.Callback):
    """Counts synchronising CUDA calls between steps ``start`` and ``start + window``."""

    def __init__(self, start: int, window: int) -> None:
        self.start, self.stop = start, start + window
        self.syncs = 0
        self.t0 = self.t1 = 0.0
        self._catch: warnings.catch_warnings | None = None
        self._seen: list[warnings.WarningMessage] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.train_steps == self.start:
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()
            self._catch = warnings.catch_warnings(record=True)
            self._seen = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if pl_module.train_steps == self.stop and self._catch is not None:
            torch.cuda.set_sync_debug_mode("default")
            torch.cuda.synchronize()
            self.t1 = time.perf_counter()
            assert self._seen is not None
            self.syncs = sum("synchroniz" in str(w.message) for w in self._seen)
            self._catch.__exit__(None, None, None)
            self._catch = None


def _run(check: str, steps: int, window: int) -> tuple[float, float]:
    problem = problems.get("burgers")
    L.seed_everything(0)
    module = problem.module(strategy="none", finite_check=check)
    spy = _Window(start=(steps - window) // 2, window=window)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cuda",
        devices=1,
        logger=False,
        log_every_n_steps=10**6,  # no logging step inside the window
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[spy],
    )
    trainer.fit(module, datamodule=problem.datamodule(seed=0))
    assert module._finite_deferred == (check == "deferred")
    return spy.syncs / window, window / (spy.t1 - spy.t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--window", type=int, default=90, help="< 100: no periodic check inside")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_sync: no CUDA device here; nothing measured")
        return 0
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    rows = {c: _run(c, args.steps, args.window) for c in ("every_step", "deferred")}
    for check, (syncs, rate) in rows.items():
        print(f"finite_check={check:10s}  syncs/step {syncs:.2f}  steps/s {rate:.1f}")
    ratio = rows["deferred"][1] / rows["every_step"][1]
    print(f"steps/s deferred / every_step: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
