"""``PINNModule`` side by side with a plain PyTorch loop, DeepXDE and PINA on Burgers.

    python benchmarks/peers.py speed [--rounds 5] [--steps 250] [--warmup 30] [--threads 1]
                                     [--allocator each|tuned|default]
    python benchmarks/peers.py accuracy [--budget 180] [--target 1e-2] [--threads 1]

The peers are an optional extra: ``pip install -e .[bench]`` (DeepXDE runs on its pytorch
backend, ``DDE_BACKEND=pytorch`` is set for it). A peer that is not installed is skipped with
a message saying so.

**speed** (issue 14, item 4a): steady-state steps/s on one fixed set-up — Burgers
(ν = 0.01/π, x ∈ [-1, 1], t ∈ [0, 1]), tanh 2-64×4-1, 2000 residual, 200 initial and 200
boundary points, Adam 1e-3. Systems:

- ``plain``: the simplest loop — the same network, sampler and loss code
  (``problem.losses``), the summed loss, one backward, one Adam step;
- ``pinn-none``: ``PINNModule`` (strategy ``none``, K = 3 per-loss backward passes) in a
  ``lightning.Trainer``;
- ``pinn-probe``: the same with ``ConflictCallback(probe_steps=steps + 1)`` recording the
  conflict statistics on every measured step;
- ``deepxde``: ``dde.data.TimePDE`` + ``dde.nn.FNN`` + ``model.train`` (its own PDE
  residual via ``dde.grad``, its own fixed points);
- ``pina``: ``BurgersProblem`` + ``PINN`` solver + ``pina.Trainer`` (full batch, one step per
  epoch, its own fixed points).

Each system runs in its own subprocess per round (DeepXDE sets global state), so import and
set-up are excluded: a step is the time between two consecutive step-end stamps, the first
``--warmup`` steps are dropped. Rounds are interleaved and the system order rotates every
round; the table gives the median step time over all rounds and the ratio of each system's
steps/s to the plain loop's in the same run (> 1 is faster than the plain loop).

**accuracy** (item 4b): each system with its own recipe trains for ``--budget`` seconds of
training wall time (evaluation excluded); the relative L2 error against the exact solution on
the 256 × 100 grid is measured every ``--eval-every`` seconds. The table gives the time at
which the error first reached ``--target`` and the error at the end of the budget. Recipes:

- ``pinn``: the Burgers recipe ``examples/recipes/burgers.yaml`` (what ``lightning-pinn run
  burgers`` trains: its trunk, schedule, weighting, points, Adam then L-BFGS, the probe);
- ``deepxde``: DeepXDE's Burgers example (FNN 2-20×3-1, 2540/80/160 points, Adam 1e-3 for
  ``--dde-adam-iters`` iterations, then L-BFGS);
- ``pina``: PINA's defaults (``PINN`` solver, its default Adam 1e-3 and MSE loss, full batch)
  with the tanh 2-64×4-1 network and the point counts above (PINA ships no Burgers network).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

NU = 0.01 / math.pi
SPEED_SYSTEMS = ("plain", "pinn-none", "pinn-probe", "deepxde", "pina")
ACCURACY_SYSTEMS = ("pinn", "deepxde", "pina")
PEER_PACKAGES = {"deepxde": "deepxde", "pina": "pina"}  # system -> module it needs
RESULT_TAG = "RESULT "


# -- shared pieces --------------------------------------------------------------------------
def _burgers():
    from lightning_pinn import problems

    return problems.get("burgers")


def _mlp() -> torch.nn.Module:
    from lightning_pinn.networks import MLP

    return MLP(2, 1, 64, 4)


def _step_times(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps[:-1], stamps[1:])]


class _Budget:
    """Training wall clock (evaluation excluded) with a rel-L2 trace ``[(seconds, error)]``."""

    def __init__(self, budget: float, eval_every: float, predict: Callable[[Tensor], Tensor]):
        problem = _burgers()
        self.points = problem.eval_points()  # (25600, 2) columns (x, t)
        self.exact = problem.reference(self.points)  # (25600, 1)
        self.budget, self.eval_every, self.predict = budget, eval_every, predict
        self.trace: list[tuple[float, float]] = []
        self.excluded = 0.0
        self.next_eval = 0.0
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.excluded

    def tick(self) -> bool:
        """Evaluate when due; ``True`` once the budget is spent."""
        now = self.elapsed()
        done = now >= self.budget
        if now >= self.next_eval or done:
            t0 = time.perf_counter()
            with torch.no_grad():
                u = self.predict(self.points).reshape(self.exact.shape).double()
            err = float(torch.linalg.norm(u - self.exact) / torch.linalg.norm(self.exact))
            self.trace.append((now, err))
            self.next_eval = now + self.eval_every
            self.excluded += time.perf_counter() - t0
        return done


def _lightning_stamp(on_step: Callable[[], bool]):
    """A Lightning callback calling ``on_step()`` at every batch end; ``True`` stops."""
    from lightning.pytorch.callbacks import Callback

    class _Stamp(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if on_step():
                trainer.should_stop = True

    return _Stamp()


def _quiet_trainer_kwargs() -> dict:
    return dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


# -- speed: one system, one round ------------------------------------------------------------
def speed_plain(steps: int, seed: int) -> list[float]:
    problem = _burgers()
    torch.manual_seed(seed)
    net = _mlp()
    module = problem.module(trunk=net)  # only to reuse problem.losses(module, batch)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    dm = problem.datamodule(seed=seed)
    stamps = [time.perf_counter()]
    for i in range(steps):
        loss = sum(problem.losses(module, dm.sample(i)).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stamps.append(time.perf_counter())
    return _step_times(stamps)


def _speed_pinn(steps: int, seed: int, probe: bool) -> list[float]:
    import lightning as L

    from lightning_pinn import ConflictCallback

    problem = _burgers()
    torch.manual_seed(seed)
    module = problem.module(trunk=_mlp(), strategy="none", lr=1e-3)
    stamps: list[float] = []
    callbacks = [_lightning_stamp(lambda: stamps.append(time.perf_counter()) or False)]
    if probe:  # records the statistics on every step of the round, never switches
        out = tempfile.mkdtemp(prefix="peers-probe-")
        callbacks.insert(
            0, ConflictCallback(probe_steps=steps + 1, auto_switch=False, output_dir=out)
        )
    trainer = L.Trainer(
        max_steps=steps + 1,
        callbacks=callbacks,
        log_every_n_steps=50,
        limit_val_batches=0,
        **_quiet_trainer_kwargs(),
    )
    trainer.fit(module, datamodule=problem.datamodule(seed=seed))
    return _step_times(stamps)


def speed_pinn_none(steps: int, seed: int) -> list[float]:
    return _speed_pinn(steps, seed, probe=False)


def speed_pinn_probe(steps: int, seed: int) -> list[float]:
    return _speed_pinn(steps, seed, probe=True)


def _dde_model(seed: int, points: tuple[int, int, int], widths: list[int], t_end: float):
    os.environ["DDE_BACKEND"] = "pytorch"
    import deepxde as dde
    import numpy as np

    dde.config.set_random_seed(seed)

    def pde(x, y):
        dy_x = dde.grad.jacobian(y, x, i=0, j=0)
        dy_t = dde.grad.jacobian(y, x, i=0, j=1)
        dy_xx = dde.grad.hessian(y, x, i=0, j=0)
        return dy_t + y * dy_x - NU * dy_xx

    geomtime = dde.geometry.GeometryXTime(
        dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, t_end)
    )
    bc = dde.icbc.DirichletBC(geomtime, lambda x: 0, lambda _, on_boundary: on_boundary)
    ic = dde.icbc.IC(
        geomtime, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on_initial: on_initial
    )
    n_domain, n_boundary, n_initial = points
    data = dde.data.TimePDE(
        geomtime, pde, [bc, ic], num_domain=n_domain, num_boundary=n_boundary, num_initial=n_initial
    )
    net = dde.nn.FNN([2, *widths, 1], "tanh", "Glorot normal")
    return dde, dde.Model(data, net)


def speed_deepxde(steps: int, seed: int) -> list[float]:
    dde, model = _dde_model(seed, (2000, 200, 200), [64] * 4, 1.0)
    torch.set_num_threads(_THREADS)  # DeepXDE's import may reset it
    model.compile("adam", lr=1e-3)
    stamps: list[float] = []

    class _Stamp(dde.callbacks.Callback):
        def on_train_begin(self) -> None:
            stamps.append(time.perf_counter())

        def on_batch_end(self) -> None:
            stamps.append(time.perf_counter())

    # display_every beyond the run: the test pass runs only after the last step.
    model.train(iterations=steps, display_every=10**9, callbacks=[_Stamp()], verbose=0)
    return _step_times(stamps)[:-1]  # the last step includes DeepXDE's test pass


def _pina_solver(seed: int):
    from pina import LabelTensor
    from pina.optim import TorchOptimizer
    from pina.problem.zoo import BurgersProblem
    from pina.solver import PINN

    torch.manual_seed(seed)
    problem = BurgersProblem(nu=NU)
    for domain, n in (("D", 2000), ("t0", 200), ("boundary", 200)):
        problem.discretise_domain(n, "random", domains=domain)
    solver = PINN(problem, _mlp(), optimizer=TorchOptimizer(torch.optim.Adam, lr=1e-3))

    def predict(points: Tensor) -> Tensor:
        x = LabelTensor(points, ["x", "t"]).extract(problem.input_variables)
        return solver(x).as_subclass(Tensor)

    return solver, predict


def speed_pina(steps: int, seed: int) -> list[float]:
    from pina import Trainer

    solver, _ = _pina_solver(seed)
    stamps: list[float] = []
    stamp = _lightning_stamp(lambda: stamps.append(time.perf_counter()) or False)
    trainer = Trainer(solver, max_epochs=steps + 1, callbacks=[stamp], **_quiet_trainer_kwargs())
    trainer.train()
    return _step_times(stamps)


SPEED = {
    "plain": speed_plain,
    "pinn-none": speed_pinn_none,
    "pinn-probe": speed_pinn_probe,
    "deepxde": speed_deepxde,
    "pina": speed_pina,
}


# -- accuracy: one system, its own recipe ----------------------------------------------------
def accuracy_pinn(args: argparse.Namespace) -> list[tuple[float, float]]:
    """Ours with the Burgers recipe (``examples/recipes/burgers.yaml``), as ``run`` trains it."""
    import lightning as L

    from lightning_pinn import ConflictCallback
    from lightning_pinn.run import RunConfig, apply_recipe, load_recipe
    from lightning_pinn.run._experiment import _phase_options

    problem = _burgers()
    cfg = RunConfig(problem="burgers", seed=args.seed, threads=_THREADS)
    cfg = apply_recipe(cfg, load_recipe("burgers", "default"), set())
    L.seed_everything(args.seed, verbose=False)
    start = "none" if cfg.strategy == "auto" else cfg.strategy
    module = problem.module(
        lr=cfg.lr, strategy=start, **_phase_options(cfg, problem), **cfg.module_options
    )
    budget = _Budget(args.budget, args.eval_every, module)
    callbacks = [
        ConflictCallback(probe_steps=cfg.effective_probe_steps, auto_switch=start != cfg.strategy),
        _lightning_stamp(budget.tick),
    ]
    trainer = L.Trainer(
        max_steps=cfg.max_steps,
        callbacks=callbacks,
        log_every_n_steps=50,
        limit_val_batches=0,
        **_quiet_trainer_kwargs(),
    )
    budget.start = time.perf_counter()
    datamodule = problem.datamodule(seed=args.seed, points=cfg.points, resample=cfg.resample)
    trainer.fit(module, datamodule=datamodule)
    if budget.elapsed() < budget.budget:  # the recipe ended first: its final error
        budget.next_eval = 0.0
        budget.tick()
    return budget.trace


def accuracy_deepxde(args: argparse.Namespace) -> list[tuple[float, float]]:
    dde, model = _dde_model(args.seed, (2540, 80, 160), [20] * 3, 0.99)
    torch.set_num_threads(_THREADS)
    budget = _Budget(args.budget, args.eval_every, lambda x: model.net(x))

    class _Tick(dde.callbacks.Callback):
        def on_batch_end(self) -> None:
            if budget.tick():
                self.model.stop_training = True

    model.compile("adam", lr=1e-3)
    budget.start = time.perf_counter()
    model.train(iterations=args.dde_adam_iters, callbacks=[_Tick()], verbose=0)
    if not model.stop_training:
        # L-BFGS reports to callbacks every iter_per_step iterations: check the budget often.
        options = dde.optimizers.config.LBFGS_options
        options["iter_per_step"] = 20
        options["fun_per_step"] = options["maxfun"] * 20 // options["maxiter"]
        model.compile("L-BFGS")
        model.train(callbacks=[_Tick()], verbose=0)
    if budget.elapsed() < budget.budget:  # stopped early (converged): final error
        budget.next_eval = 0.0
        budget.tick()
    return budget.trace


def accuracy_pina(args: argparse.Namespace) -> list[tuple[float, float]]:
    from pina import Trainer

    solver, predict = _pina_solver(args.seed)
    budget = _Budget(args.budget, args.eval_every, predict)
    stamp = _lightning_stamp(budget.tick)
    trainer = Trainer(solver, max_epochs=10**9, callbacks=[stamp], **_quiet_trainer_kwargs())
    budget.start = time.perf_counter()
    trainer.train()
    return budget.trace


ACCURACY = {"pinn": accuracy_pinn, "deepxde": accuracy_deepxde, "pina": accuracy_pina}

_THREADS = 1


# -- driver ---------------------------------------------------------------------------------
def missing_package(system: str) -> str | None:
    """The module a system needs and cannot import, or ``None``."""
    name = PEER_PACKAGES.get(system)
    if name is not None and importlib.util.find_spec(name) is None:
        return name
    return None


def _run_worker(args: argparse.Namespace, system: str, seed: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), args.mode, "--worker", system]
    cmd += ["--seed", str(seed), "--threads", str(args.threads), "--allocator", args.allocator]
    if args.mode == "speed":
        cmd += ["--steps", str(args.steps)]
    else:
        cmd += ["--budget", str(args.budget), "--eval-every", str(args.eval_every)]
        cmd += ["--dde-adam-iters", str(args.dde_adam_iters)]
    env = dict(os.environ, DDE_BACKEND="pytorch", OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise RuntimeError(f"{system} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def speed_table(times: dict[str, list[float]]) -> list[str]:
    """Rows ``system  ms/step  steps/s  ratio`` (ratio = steps/s relative to ``plain``)."""
    base = statistics.median(times["plain"]) if times.get("plain") else None
    rows = [f"{'system':<12} {'median ms/step':>15} {'steps/s':>9} {'vs plain':>9} {'n':>6}"]
    for system, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{base / med:9.3f}" if base else f"{'-':>9}"
        rows.append(f"{system:<12} {med * 1e3:15.2f} {1 / med:9.2f} {ratio} {len(ts):6d}")
    return rows


def accuracy_table(traces: dict[str, list[tuple[float, float]]], target: float) -> list[str]:
    rows = [f"{'system':<10} {'time to ' + format(target, 'g'):>14} {'rel L2 at budget':>17}"]
    for system, trace in traces.items():
        hit = next((t for t, e in trace if e <= target), None)
        reached = f"{hit:13.1f}s" if hit is not None else f"{'not reached':>14}"
        rows.append(f"{system:<10} {reached} {trace[-1][1]:17.3e}")
    return rows


def _set_allocator(mode: str) -> None:
    """``each``: every system as it ships (``PINNModule`` raises glibc's malloc thresholds when
    it starts training, the others keep glibc's defaults); ``tuned``: every system under
    :func:`lightning_pinn.tune_allocator`; ``default``: every system under glibc's defaults."""
    import lightning_pinn._allocator as allocator

    if mode == "tuned":
        allocator.tune_allocator()
    elif mode == "default":
        allocator._applied = False  # as if tried and refused: PINNModule leaves malloc alone


def _worker(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore")
    _set_allocator(args.allocator)
    if args.mode == "speed":
        result = {"times": SPEED[args.worker](args.steps, args.seed)}
    else:
        result = {"trace": ACCURACY[args.worker](args)}
    print(RESULT_TAG + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    global _THREADS
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["speed", "accuracy"])
    parser.add_argument("--systems", nargs="+", default=None, help="default: all of the mode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5, help="speed: interleaved rounds")
    parser.add_argument("--steps", type=int, default=250, help="speed: steps per system/round")
    parser.add_argument("--warmup", type=int, default=30, help="speed: steps dropped per round")
    parser.add_argument("--budget", type=float, default=180.0, help="accuracy: training seconds")
    parser.add_argument("--eval-every", type=float, default=5.0, help="accuracy: seconds")
    parser.add_argument("--target", type=float, default=1e-2, help="accuracy: rel L2 target")
    parser.add_argument("--dde-adam-iters", type=int, default=15000, help="accuracy: DeepXDE")
    parser.add_argument(
        "--allocator",
        choices=["each", "tuned", "default"],
        default="each",
        help="malloc settings: each system as it ships (default), all tuned, all glibc defaults",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _THREADS = args.threads
    torch.set_num_threads(args.threads)
    if args.worker is not None:
        _worker(args)
        return

    known = SPEED_SYSTEMS if args.mode == "speed" else ACCURACY_SYSTEMS
    systems = list(args.systems or known)
    unknown = [s for s in systems if s not in known]
    if unknown:
        parser.error(f"unknown {args.mode} systems {unknown}; valid: {', '.join(known)}")
    for system in list(systems):
        if (name := missing_package(system)) is not None:
            print(f"skipping {system}: {name!r} is not installed (pip install -e .[bench])")
            systems.remove(system)
    print(
        f"mode: {args.mode}  threads/process: {args.threads}  cpus: {os.cpu_count()}  "
        f"allocator: {args.allocator}  "
        f"load average (1 min) at start: {os.getloadavg()[0]:.2f}"
    )
    if args.mode == "speed":
        print(f"rounds: {args.rounds}  steps/round: {args.steps}  warm-up dropped: {args.warmup}")
        times: dict[str, list[float]] = {s: [] for s in systems}
        for r in range(args.rounds):
            order = systems[r % len(systems) :] + systems[: r % len(systems)]
            for system in order:
                ts = _run_worker(args, system, args.seed + r)["times"][args.warmup :]
                times[system] += ts
                print(f"  round {r} {system}: {1 / statistics.median(ts):.2f} steps/s", flush=True)
        print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
        print("\n".join(speed_table(times)))
    else:
        print(f"budget: {args.budget:g} s  eval every: {args.eval_every:g} s")
        traces = {}
        for system in systems:
            traces[system] = [tuple(p) for p in _run_worker(args, system, args.seed)["trace"]]
            print(f"  {system}: rel L2 {traces[system][-1][1]:.3e} at budget", flush=True)
        print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
        print("\n".join(accuracy_table(traces, args.target)))


if __name__ == "__main__":
    main()
