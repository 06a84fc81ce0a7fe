"""Benchmark cells: the suites, one cell per ``(problem, strategy, seed)``, and the resumable run.

Each cell is one independent :func:`~lightning_pinn.run.run_experiment` call, run in a pool of
processes and appended to ``results.jsonl`` as soon as it finishes; re-running the same
command skips finished cells.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import logging
import multiprocessing as mp
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm.auto import tqdm

from lightning_pinn import problems
from lightning_pinn.run import RunConfig, default_threads, oversubscription, run_experiment
from lightning_pinn.strategies import strategy_names

__all__ = [
    "ALL_STRATEGIES",
    "RUN_OPTIONS",
    "Cell",
    "load_results",
    "make_cells",
    "run_benchmark",
    "suite",
]

ALL_STRATEGIES: tuple[str, ...] = (*strategy_names(), "auto")
"""Every strategy a cell may run: the registered ones from the start, and ``auto``."""

# RunConfig fields a cell may set: the optimiser schedule, and a validation interval (the
# record's `val_curve` then holds the rel L2 at every shorter budget).
RUN_OPTIONS = ("lr", "lr_decay_rate", "lr_decay_steps", "val_every")


def _suites() -> dict[str, dict[str, Any]]:
    return {
        "quick": {
            "problems": ["burgers", "helmholtz", "heat_inverse", "kovasznay"],
            "strategies": list(ALL_STRATEGIES),
            "seeds": [0],
            "steps": 1000,
            "probe_steps": 250,
        },
        "full": {
            "problems": problems.names(),
            "strategies": list(ALL_STRATEGIES),
            "seeds": [0, 1, 2],
            "steps": 5000,
            "probe_steps": 1000,
        },
    }


def suite(name: str) -> dict[str, Any]:
    """The settings of a named suite.

    Args:
        name: ``"quick"`` (4 problems, 1 seed, 1000 steps) or ``"full"`` (every registered
            problem, 3 seeds, 5000 steps).

    Returns:
        ``{"problems", "strategies", "seeds", "steps", "probe_steps"}``.

    Raises:
        ValueError: unknown suite name (the valid ones are listed).
    """
    suites = _suites()
    if name not in suites:
        raise ValueError(f"unknown suite {name!r}; valid: {', '.join(suites)}")
    return suites[name]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One benchmark run."""

    problem: str
    strategy: str
    seed: int
    steps: int
    probe_steps: int
    options: tuple[tuple[str, Any], ...] = ()  # module options (ablations), sorted pairs
    run_options: tuple[tuple[str, Any], ...] = ()  # RUN_OPTIONS fields (lr schedule), sorted

    @property
    def key(self) -> str:
        """``problem|strategy|seed|steps|probe_steps|options[|run_options]``: identifies the
        cell in ``results.jsonl`` (the run options are appended only when set, so older
        result files keep their keys)."""

        def pairs(items: tuple[tuple[str, Any], ...]) -> str:
            return ",".join(f"{k}={v}" for k, v in items)

        key = f"{self.problem}|{self.strategy}|{self.seed}|{self.steps}|{self.probe_steps}|"
        key += pairs(self.options)
        if self.run_options:
            key += "|" + pairs(self.run_options)
        return key


def _run_cell(cell: Cell, out: str, threads: int, points: dict[str, int] | None) -> dict:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_pinn"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(threads)
    cfg = RunConfig(
        problem=cell.problem,
        max_steps=cell.steps,
        seed=cell.seed,
        strategy=cell.strategy,
        probe_steps=cell.probe_steps,
        module_options=dict(cell.options),
        logger="none",
        out=str(Path(out) / "runs"),
        name=cell.key.replace("|", "_").replace("=", "-").replace(",", "_"),
        log_every_n_steps=max(1, cell.steps // 50),
        progress_bar=False,
        checkpoint=False,
        plots=False,
        points=points,
        accelerator="cpu",
        threads=threads,
        **{"val_every": cell.steps, **dict(cell.run_options)},
    )
    summary = run_experiment(cfg)
    summary["key"] = cell.key
    summary["options"] = dict(cell.options)
    summary["run_options"] = dict(cell.run_options)
    return summary


def load_results(path: str | Path) -> list[dict]:
    """Records of a ``results.jsonl`` file (missing file: empty list)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_cells(
    problem_names: Sequence[str],
    strategies: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    probe_steps: int,
    options: Mapping[str, Any] | None = None,
    run_options: Mapping[str, Any] | None = None,
) -> list[Cell]:
    """The cells of a benchmark, validated.

    Args:
        problem_names: registered problems.
        strategies: names from :data:`ALL_STRATEGIES`.
        seeds: one cell per seed.
        steps: training steps per cell.
        probe_steps: probe window, at most ``steps``.
        options: PINNModule options for every cell (an ablation of the method).
        run_options: the optimiser schedule of every cell (keys from :data:`RUN_OPTIONS`).

    Returns:
        The cells, problem-major, then seed, then strategy.

    Raises:
        ValueError: unknown problem, strategy or run option, or ``probe_steps > steps``.
    """
    known = set(problems.names())
    for name in problem_names:
        if name not in known:
            problems.get(name)  # raises with close matches
    bad = [s for s in strategies if s not in ALL_STRATEGIES]
    if bad:
        raise ValueError(f"unknown strategies {bad}; valid: {', '.join(ALL_STRATEGIES)}")
    if not 0 < probe_steps <= steps:
        raise ValueError(f"need 0 < probe_steps <= steps, got {probe_steps} and {steps}")
    unknown = sorted(set(run_options or {}) - set(RUN_OPTIONS))
    if unknown:
        raise ValueError(f"unknown run options {unknown}; valid: {', '.join(RUN_OPTIONS)}")
    opts = tuple(sorted((options or {}).items()))
    run_opts = tuple(sorted((run_options or {}).items()))
    return [
        Cell(p, s, seed, steps, probe_steps, opts, run_opts)
        for p in problem_names
        for seed in seeds
        for s in strategies
    ]


def run_benchmark(
    cells: Sequence[Cell],
    out: str | Path,
    *,
    jobs: int | None = None,
    points: dict[str, int] | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> list[dict]:
    """Run the cells not yet in ``out/results.jsonl`` and append their records.

    Args:
        cells: from :func:`make_cells`.
        out: output directory (created).
        jobs: parallel processes (default: one per two cores, at least one).
        points: point counts per set overriding the problems' defaults (tests use tiny ones).
        progress: show a tqdm progress bar.
        threads: torch threads per process (default: 1 with several jobs, else
            :func:`~lightning_pinn.run.default_threads`).

    Returns:
        All records of the results file after the run.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = {r["key"] for r in load_results(results)}
    todo = [c for c in cells if c.key not in done]
    cores = os.cpu_count() or 1
    jobs = max(1, jobs or cores // 2)
    threads = threads or default_threads(jobs)
    if (notice := oversubscription(threads, jobs)) is not None:
        logging.getLogger("lightning_pinn").warning(f"benchmark: {notice}")
    bar = None
    if progress:
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="benchmark cells")
    with results.open("a") as sink:
        if jobs == 1:
            for cell in todo:
                _append(sink, _run_cell(cell, str(out), threads, points), bar)
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = [pool.submit(_run_cell, c, str(out), threads, points) for c in todo]
                for future in cf.as_completed(futures):
                    _append(sink, future.result(), bar)
    if bar is not None:
        bar.close()
    return load_results(results)


def _append(sink: TextIO, record: dict, bar: tqdm | None) -> None:
    sink.write(json.dumps(record) + "\n")
    sink.flush()
    if bar is not None:
        bar.update(1)
