"""Step time of ``poisson_nd`` against the dimension d, as ratios to d = 2.

The residual's Laplacian is computed in forward mode (``laplacian_fwd``: the d
Hessian-vector products batched with ``vmap``), so the step time should grow far slower
than d; the issue's budget is ``time(d=50) <= 10 * time(d=2)``.

For each d a ``ProblemModule`` with the default trunk (tanh MLP d-64-64-64-64-1) and the
default point counts (1000 residual, 500 boundary points, resampled every step) trains inside
a real ``lightning.Trainer``; a callback stamps the time at every ``on_train_batch_end``, so a
step includes sampling, the K = 2 per-loss backward passes, the optimizer step and all
Lightning overhead. The dimensions are measured in the same process, interleaved in rounds
(each round fits every d for ``--steps`` steps, first 2 steps of a fit dropped), and the
median step time of each d is printed with its ratio to d = 2.

    python benchmarks/highdim.py [--rounds 5] [--steps 30] [--dims 2 5 10 20 50] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lightning_pinn import problems

warnings.filterwarnings("ignore")


class _StepTimer(Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args: object) -> None:
        self.stamps.append(time.perf_counter())


def _fit_steps(module: L.LightningModule, dm: L.LightningDataModule, steps: int) -> list[float]:
    timer = _StepTimer()
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        log_every_n_steps=50,
        callbacks=[timer],
    )
    trainer.fit(module, dm)
    stamps = timer.stamps[2:]  # drop warm-up steps
    return [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 5, 10, 20, 50])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    L.seed_everything(0, verbose=False)
    setups = {}
    for d in args.dims:
        problem = problems.get("poisson_nd", dim=d)
        setups[d] = (problem.module(), problem.datamodule(seed=d))
    times: dict[int, list[float]] = {d: [] for d in args.dims}
    for _ in range(args.rounds):
        for d in args.dims:
            times[d] += _fit_steps(*setups[d], args.steps)
    base = statistics.median(times[args.dims[0]])
    print(
        f"poisson_nd step time, torch threads = {torch.get_num_threads()}, "
        f"{args.rounds} rounds x {args.steps} steps, medians"
    )
    print(f"{'d':>4} {'ms/step':>9} {'ratio':>7}")
    for d in args.dims:
        med = statistics.median(times[d])
        print(f"{d:>4} {1000 * med:>9.1f} {med / base:>7.2f}")


if __name__ == "__main__":
    main()
