"""DDP on 2 CPU processes (gloo) vs 1 process at the same global batch, Burgers K = 3.

Prints the median step time of each, their ratio, and the share of the 2-process step spent
in the one all-reduce of J (timed around ``trainer.strategy.reduce``).

    python benchmarks/ddp_cost.py [--steps 150] [--points 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import lightning as L, torch
from lightning_pinn import problems

out, devices, steps, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(max(1, 2 // devices))

class Stamp(L.Callback):
    def __init__(self):
        self.t, self.reduce = [], []
    def setup(self, trainer, pl_module, stage):
        strategy = trainer.strategy
        original = strategy.reduce
        def timed(*a, **k):
            t0 = time.perf_counter(); r = original(*a, **k)
            self.reduce.append(time.perf_counter() - t0); return r
        strategy.reduce = timed
    def on_train_batch_end(self, trainer, *a):
        self.t.append(time.perf_counter())
    def on_train_end(self, trainer, *a):
        dt = [b - a for a, b in zip(self.t[:-1], self.t[1:])][10:]
        with open(f"{out}/rank{trainer.global_rank}.json", "w") as f:
            json.dump({"step": dt, "reduce": self.reduce[10:]}, f)

L.seed_everything(0)
per = n // devices
small = max(1, per // 10)
p = problems.get("burgers", n_residual=per, n_initial=small, n_boundary=small)
trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=devices,
    strategy="ddp" if devices > 1 else "auto", logger=False, enable_checkpointing=False,
    enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    callbacks=[Stamp()])
trainer.fit(p.module(), datamodule=p.datamodule(seed=0))
"""


def _run(devices: int, steps: int, points: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        subprocess.run(
            [sys.executable, str(script), tmp, str(devices), str(steps), str(points)],
            check=True,
            capture_output=True,
        )
        return json.loads((Path(tmp) / "rank0.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    one, two, red = [], [], []
    for _ in range(args.rounds):  # interleaved
        t0 = time.perf_counter()
        one += _run(1, args.steps, args.points)["step"]
        r = _run(2, args.steps, args.points)
        two += r["step"]
        red += r["reduce"]
        print(f"round done in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    m1, m2, mr = statistics.median(one), statistics.median(two), statistics.median(red)
    print(f"1 process : median {m1 * 1e3:.2f} ms/step ({args.points} residual points)")
    print(f"2 processes: median {m2 * 1e3:.2f} ms/step ({args.points // 2} per rank)")
    print(f"ratio 2-process / 1-process: {m2 / m1:.3f}")
    print(f"all-reduce of J: median {mr * 1e3:.3f} ms = {mr / m2:.1%} of the 2-process step")


if __name__ == "__main__":
    main()
