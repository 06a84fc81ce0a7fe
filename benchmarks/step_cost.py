"""Per-step cost of ``PINNModule`` against the simplest plain-PyTorch loop.

Both train Burgers with the same tanh MLP 2-64-64-64-64-1 and the same point counts (2000
residual, 200 initial, 200 boundary, resampled every step by the same sampler), Adam 1e-3.
The plain loop does one forward of each point set, one backward of the summed loss and one
Adam step. ``PINNModule`` runs inside a real ``lightning.Trainer`` (K = 3 per-loss backward
passes, the strategy, manual optimization, logging every 50 steps); a callback stamps the time
at every ``on_train_batch_end``, so a step includes data loading and all Lightning overhead.

The two are measured in the same process, interleaved in rounds, and the ratio of the median
step times is printed (these machines are noisy; absolute times drift). ``PINNModule`` raises
glibc's malloc thresholds when training starts on a CPU (``lightning_pinn.tune_allocator``,
process-wide); so that both systems run under the same allocator settings from the first
round, the script applies them at start, or leaves glibc's defaults for both with
``--default-allocator`` (and ``PINNModule(tune_allocator=False)``).

    python benchmarks/step_cost.py [--rounds 6] [--steps 150] [--strategies none reweight ...]

A strategy name with the suffix ``+probe`` (e.g. ``none+probe``) adds a ``ConflictCallback``
that records the conflict statistics on every step: ``none+probe / none`` is the callback's
overhead. ``adapters`` is the summed adapter design, ``adapters-per_loss`` the per-loss one,
``adapters-nonlinear`` the summed design with the nonlinear (tanh branch) adapter form.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lightning_pinn import ConflictCallback, problems, tune_allocator
from lightning_pinn.networks import MLP

warnings.filterwarnings("ignore")

ADAPTER_DESIGNS = {  # the second design (loss k via adapter k), the tanh-branch form
    "adapters-per_loss": {"mode": "per_loss"},
    "adapters-nonlinear": {"form": "nonlinear"},
}


class _Stamp(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _sync(pl_module.device.type)
        self.times.append(time.perf_counter())


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


TUNE = [True]  # main() sets it: the allocator settings both systems run under


def plain_loop(problem, steps: int, seed: int, device: str = "cpu") -> list[float]:
    """Step times of a plain loop: sum of losses, one backward, Adam."""
    torch.manual_seed(seed)
    net = MLP(2, 1, 64, 4)
    module = problem.module(trunk=net).to(device)  # only to reuse problem.losses(module, ...)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    dm = problem.datamodule(seed=seed)
    stamps = [time.perf_counter()]
    for i in range(steps):
        batch = {k: v.to(device) for k, v in dm.sample(i).items()}
        loss = sum(problem.losses(module, batch).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps[:-1], stamps[1:])]


def lightning_run(
    problem, steps: int, seed: int, strategy: str, device: str = "cpu", **options
) -> list[float]:
    """Step times of ``PINNModule`` in a ``Trainer`` (time between batch ends)."""
    torch.manual_seed(seed)
    probe = strategy.endswith("+probe")  # the ConflictCallback recording every step
    strategy = strategy.removesuffix("+probe")
    if strategy in ADAPTER_DESIGNS:
        from lightning_pinn.strategies import AdapterStrategy

        strategy = AdapterStrategy(**ADAPTER_DESIGNS[strategy])
    module = problem.module(trunk=MLP(2, 1, 64, 4), strategy=strategy, **options)
    module.tune_allocator = TUNE[0]
    stamp = _Stamp()
    callbacks = [stamp]
    if probe:
        out = tempfile.mkdtemp()
        callbacks.insert(
            0, ConflictCallback(probe_steps=steps + 1, auto_switch=False, output_dir=out)
        )
    trainer = L.Trainer(
        max_steps=steps + 1,
        accelerator=device,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        log_every_n_steps=50,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=problem.datamodule(seed=seed))
    t = stamp.times
    return [b - a for a, b in zip(t[:-1], t[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--strategies", nargs="+", default=["none"])
    parser.add_argument("--accelerator", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="keep glibc's malloc defaults for both systems (no tune_allocator)",
    )
    args = parser.parse_args()
    TUNE[0] = not args.default_allocator
    if TUNE[0]:
        tune_allocator()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    problem = problems.get("burgers")
    times: dict[str, list[float]] = {"plain": []}
    for s in args.strategies:
        times[s] = []
    for r in range(args.rounds):
        dev = args.accelerator
        times["plain"] += plain_loop(problem, args.steps, r, dev)[args.warmup :]
        for s in args.strategies:
            opts = {"aggregator": "upgrad"} if s.startswith("surgery") else {}
            times[s] += lightning_run(problem, args.steps, r, s, dev, **opts)[args.warmup :]
    plain = statistics.median(times["plain"])
    print(
        f"device: {args.accelerator}  threads: {torch.get_num_threads()}  "
        f"rounds: {args.rounds}  steps/round: {args.steps}  "
        f"allocator: {'tuned' if TUNE[0] else 'glibc defaults'}"
    )
    print(f"plain loop: median {plain * 1e3:.2f} ms/step = {1 / plain:.1f} steps/s")
    for s in args.strategies:
        med = statistics.median(times[s])
        print(f"PINNModule[{s}]: median {med * 1e3:.2f} ms/step; ratio to plain {med / plain:.3f}")
    if len(args.strategies) > 1 and "none" in args.strategies:
        base = statistics.median(times["none"])
        for s in args.strategies:
            if s != "none":
                print(f"ratio {s}/none: {statistics.median(times[s]) / base:.3f}")


if __name__ == "__main__":
    main()
