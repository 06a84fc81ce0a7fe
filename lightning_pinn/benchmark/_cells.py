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
import platform
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm.auto import tqdm

from lightning_pinn import problems
from lightning_pinn.callbacks._switching import intervention_map
from lightning_pinn.callbacks._trial import max_candidates, max_discarded_steps
from lightning_pinn.run import (
    Recipe,
    RunConfig,
    apply_recipe,
    default_threads,
    load_recipe,
    oversubscription,
    run_experiment,
)
from lightning_pinn.run._recipes import escalation_room, lbfgs_phase
from lightning_pinn.strategies import strategy_names

__all__ = [
    "ALL_STRATEGIES",
    "CELL_RULE",
    "ESCALATED",
    "GUARDED",
    "GUARDED_TRIAL_FRACTION",
    "RUN_OPTIONS",
    "Cell",
    "column",
    "load_results",
    "machine",
    "make_cells",
    "run_benchmark",
    "suite",
    "worker_pool",
]

GUARDED = "auto-guarded"
"""The cell strategy of ``auto`` with the guarded switch (``RunConfig.trial_steps``)."""
GUARDED_TRIAL_FRACTION = 0.05
"""An ``auto-guarded`` cell's trial length when the run options give none:
``max(1, round(GUARDED_TRIAL_FRACTION * steps))`` steps per candidate."""
ESCALATED = "auto-escalate"
"""The cell strategy of ``auto`` with escalation (``RunConfig.escalate``: reweight first,
adapters only if the conflict remains under reweighting)."""
ALL_STRATEGIES: tuple[str, ...] = (*strategy_names(), "auto", GUARDED, ESCALATED)
"""Every strategy a cell may run: the registered ones from the start, ``auto`` (the diagnosis
alone decides), ``auto-guarded`` (the diagnosis ranks, trials decide) and ``auto-escalate``
(reweight first, a second window decides on adapters)."""

# RunConfig fields a cell may set: the optimiser schedule, a validation interval (the
# record's `val_curve` then holds the rel L2 at every shorter budget), the guarded switch's
# trial length and score (`auto-guarded` cells only), the regime rule and re-probing (`auto*`
# cells only).
RUN_OPTIONS = (
    "lr",
    "lr_decay_rate",
    "lr_decay_steps",
    "val_every",
    "trial_steps",
    "trial_score",
    "trial_margin",
    "regime_rule",
    "reprobe_every",
)
_GUARDED_ONLY = ("trial_steps", "trial_score", "trial_margin")
_AUTO_ONLY = ("regime_rule", "reprobe_every")
_MODE_ONLY = (*_GUARDED_ONLY, *_AUTO_ONLY)
_AUTO = ("auto", GUARDED, ESCALATED)
CELL_RULE = "design"
"""The regime rule of ``auto`` cells without a ``regime_rule`` run option: the one every recorded
``auto`` cell ran under, whatever ``lightning-pinn run``'s default is, so keys stay
comparable."""


def column(record: Mapping[str, Any]) -> str:
    """The column a record's rel L2 belongs to in the tables: its strategy, followed by the
    mode-only run options it ran with, e.g. ``auto[reprobe_every=500]``.

    The mode-only options (``trial_*``, ``regime_rule``, ``reprobe_every``) are set per
    ``benchmark`` call but apply to ``auto`` cells only, so one results file can hold plain
    ``auto`` cells beside cells of a variant; grouping by strategy alone would pool them into
    one median. Options every cell of a call shares (module options, the lr schedule) do not
    split columns: an ablation's output directory keeps its plain columns.
    """
    run_options = record.get("run_options") or {}
    variant = [(k, run_options[k]) for k in sorted(run_options) if k in _MODE_ONLY]
    if not variant:
        return str(record["strategy"])
    return f"{record['strategy']}[{','.join(f'{k}={v}' for k, v in variant)}]"


def _trial_steps(steps: int, run_options: Mapping[str, Any]) -> int:
    """An ``auto-guarded`` cell's trial length: the run option, else a fraction of the steps."""
    return run_options.get("trial_steps") or max(1, round(GUARDED_TRIAL_FRACTION * steps))


def machine() -> str:
    """The CPU model (from /proc/cpuinfo where it exists) and the core count."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


_SUITE_STRATEGIES = (*strategy_names(), "auto")  # the suites as they were: no guarded cells


def _suites() -> dict[str, dict[str, Any]]:
    return {
        "quick": {
            "problems": ["burgers", "helmholtz", "heat_inverse", "kovasznay"],
            "strategies": list(_SUITE_STRATEGIES),
            "seeds": [0],
            "steps": 1000,
            "probe_steps": 250,
        },
        "full": {
            "problems": problems.names(),
            "strategies": list(_SUITE_STRATEGIES),
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
    recipe: str | None = None  # a recipe name or path: the problem's set-up (None: none)
    recipe_digest: str | None = None  # the recipe's digest when the cell was made

    @property
    def key(self) -> str:
        """``problem|strategy|seed|steps|probe_steps|options[|run_options][|recipe=R@D]``:
        identifies the cell in ``results.jsonl`` (run options and recipe are appended only
        when set, so older result files keep their keys; a changed recipe file makes new
        cells)."""

        def pairs(items: tuple[tuple[str, Any], ...]) -> str:
            return ",".join(f"{k}={v}" for k, v in items)

        key = f"{self.problem}|{self.strategy}|{self.seed}|{self.steps}|{self.probe_steps}|"
        key += pairs(self.options)
        if self.run_options:
            key += "|" + pairs(self.run_options)
        if self.recipe is not None:
            key += f"|recipe={self.recipe}@{self.recipe_digest}"
        return key

    def run_config(self, out: str, threads: int, points: dict[str, int] | None) -> RunConfig:
        """The cell's :class:`RunConfig`: its recipe (if any) under the cell's own steps,
        strategy, probe window, run options and point counts.

        Raises:
            RuntimeError: the recipe file changed since the cell was made.
        """
        run_options = dict(self.run_options)
        if self.strategy in _AUTO:
            run_options.setdefault("regime_rule", CELL_RULE)
        strategy = self.strategy
        if strategy == GUARDED:
            strategy = "auto"
            run_options["trial_steps"] = _trial_steps(self.steps, run_options)
        elif strategy == ESCALATED:
            strategy = "auto"
            run_options["escalate"] = True
        cfg = RunConfig(
            problem=self.problem,
            max_steps=self.steps,
            seed=self.seed,
            strategy=strategy,
            probe_steps=self.probe_steps,
            module_options=dict(self.options),
            logger="none",
            out=str(Path(out) / "runs"),
            name=self.key.replace("|", "_").replace("=", "-").replace(",", "_").replace("/", "-"),
            log_every_n_steps=max(1, self.steps // 50),
            progress_bar=False,
            checkpoint=False,
            plots=False,
            points=points,
            accelerator="cpu",
            threads=threads,
            **{"val_every": self.steps, **run_options},
        )
        if self.recipe is None:
            return cfg
        recipe = load_recipe(self.problem, self.recipe)
        if recipe.digest != self.recipe_digest:
            raise RuntimeError(
                f"recipe {recipe.source} changed since cell {self.key} was made (digest "
                f"{recipe.digest}); make the cells again"
            )
        given = {"max_steps", "strategy", "probe_steps", *run_options}
        return apply_recipe(cfg, recipe, given | ({"points"} if points else set()))


def _run_cell(cell: Cell, out: str, threads: int, points: dict[str, int] | None) -> dict:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_pinn"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(threads)
    summary = run_experiment(cell.run_config(out, threads, points))
    summary["key"] = cell.key
    summary["strategy"] = cell.strategy  # auto-guarded runs as auto with trials
    summary["options"] = dict(cell.options)
    summary["run_options"] = dict(cell.run_options)
    if cell.recipe is not None:
        summary["recipe_digest"] = cell.recipe_digest
    summary["machine"] = machine()
    summary["torch"] = torch.__version__
    return summary


def load_results(path: str | Path) -> list[dict]:
    """Records of a ``results.jsonl`` file (missing file: empty list).

    A last line cut short (no newline, not valid JSON) is the record of a run killed while
    writing it: it is skipped with a warning, and its cell counts as not done.

    Raises:
        ValueError: any other line that is not JSON (the message names the file and line).
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines) and not text.endswith("\n"):
                logging.getLogger("lightning_pinn").warning(
                    f"{path}: the last line is a record cut short (a run stopped while writing "
                    "it); it is skipped and its cell counts as not done"
                )
                continue
            raise ValueError(f"{path}, line {number}, is not a JSON record: {err}") from err
    return records


def _drop_cut_record(path: Path) -> None:
    """Cut a last line that lacks its newline (an interrupted write), so the next record
    appended starts on a line of its own instead of joining it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("r+b") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":  # the usual case: one byte read, not the whole file
            return
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)


def _asked_recipe(record: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The recipe a record's cell asked for, and whether the record is a benchmark cell: its
    key's ``recipe=R@D`` part (a cell, which sets its own strategy), else the record's
    ``recipe`` field (records of ``benchmarks/accuracy.py`` and older files)."""
    for part in str(record.get("key", "")).split("|"):
        if part.startswith("recipe=") and "@" in part:
            return part[len("recipe=") :].rsplit("@", 1)[0], True
    return record.get("recipe"), False


def _without_digest(key: str) -> str:
    """A cell key with its ``recipe=R@D`` part cut to ``recipe=R@`` (a record that
    :func:`current_records` keeps ran the same set-up as a new cell with that key)."""
    return "|".join(
        part.rsplit("@", 1)[0] + "@" if part.startswith("recipe=") and "@" in part else part
        for part in key.split("|")
    )


def _cell_digests(recipe: Recipe) -> set[str]:
    """The digests under which a benchmark cell of ``recipe`` ran the same settings.

    A cell always sets its own strategy (:meth:`Cell.run_config`), so the recipe's
    ``strategy`` never reached it: the recipe with any strategy in its place is the same
    set-up for the cell. A recipe that only changes its recommended strategy (e.g. a new
    ``burgers_inverse.yaml`` that is ``default.yaml`` with ``strategy: reweight``) keeps the
    map's cells."""
    return {
        dataclasses.replace(recipe, strategy=s).digest for s in (*ALL_STRATEGIES, recipe.strategy)
    }


def current_records(records: Sequence[dict]) -> list[dict]:
    """The records made with the current version of their recipe.

    A record that names a recipe and its digest is kept only while the recipe file's digest
    (:attr:`lightning_pinn.run.Recipe.digest`) still matches: after a recipe changes, the cells
    of its earlier versions stay in the file as history but no longer count, the same rule as
    ``benchmarks/accuracy.py``'s table. Records without a recipe, and those whose recipe cannot
    be loaded any more (a path that is gone), are kept. The recipe compared is the one the
    cell asked for (its key's ``recipe=R@D``, e.g. ``default``), looked up again for the
    record's problem: when a problem gains its own file (``convection-b1.yaml`` beside the
    family's ``convection.yaml``), its records stay current exactly when the settings did
    not change. A benchmark cell sets its own strategy, so for cells a change of the recipe's
    ``strategy`` alone keeps them current; for records of ``benchmarks/accuracy.py``, which
    train with the recipe's strategy, it does not.
    """
    # (problem, recipe) -> (the recipe's digest, the digests a cell accepts); None: unloadable
    digests: dict[tuple[str, str], tuple[str, set[str]] | None] = {}
    kept = []
    for record in records:
        (name, is_cell), digest = _asked_recipe(record), record.get("recipe_digest")
        if name is None or digest is None:
            kept.append(record)
            continue
        key = (record["problem"], name)
        if key not in digests:
            try:
                recipe = load_recipe(record["problem"], name)
                digests[key] = (recipe.digest, _cell_digests(recipe))
            except (OSError, ValueError, KeyError):
                digests[key] = None
        known = digests[key]
        if known is None or digest in (known[1] if is_cell else {known[0]}):
            kept.append(record)
    return kept


def make_cells(
    problem_names: Sequence[str],
    strategies: Sequence[str],
    seeds: Sequence[int],
    steps: int | None,
    probe_steps: int | None,
    options: Mapping[str, Any] | None = None,
    run_options: Mapping[str, Any] | None = None,
    recipe: str | None = None,
) -> list[Cell]:
    """The cells of a benchmark, validated.

    Args:
        problem_names: registered problems.
        strategies: names from :data:`ALL_STRATEGIES`.
        seeds: one cell per seed.
        steps: training steps per cell (``None`` with a ``recipe``: each problem's recipe's).
        probe_steps: probe window, at most ``steps`` (``None``: ``min(1000, steps // 2)``,
            the default of ``lightning-pinn run``).
        options: PINNModule options for every cell (an ablation of the method).
        run_options: the optimiser schedule of every cell (keys from :data:`RUN_OPTIONS`);
            ``trial_steps``/``trial_score``/``trial_margin`` apply to ``auto-guarded`` cells
            only, ``regime_rule`` (default :data:`CELL_RULE`) and ``reprobe_every`` to the
            ``auto`` cells (``auto``, ``auto-guarded``, ``auto-escalate``).
        recipe: train every cell with its problem's recipe (``"default"``), a named recipe or
            a YAML path (``examples/recipes/``); the cell's strategy, steps, probe window and
            run options override the recipe's. ``None``: the plain set-up of the suites.

    Returns:
        The cells, problem-major, then seed, then strategy.

    Raises:
        ValueError: unknown problem, strategy, run option or recipe, no ``steps`` and no
            recipe, or ``probe_steps > steps``.
    """
    known = set(problems.names())
    for name in problem_names:
        if name not in known:
            problems.get(name)  # raises with close matches
    bad = [s for s in strategies if s not in ALL_STRATEGIES]
    if bad:
        raise ValueError(f"unknown strategies {bad}; valid: {', '.join(ALL_STRATEGIES)}")
    if steps is None and recipe is None:
        raise ValueError("give the steps per cell, or a recipe whose steps each cell takes")
    unknown = sorted(set(run_options or {}) - set(RUN_OPTIONS))
    if unknown:
        raise ValueError(f"unknown run options {unknown}; valid: {', '.join(RUN_OPTIONS)}")
    recipes = {p: load_recipe(p, recipe) for p in problem_names} if recipe is not None else {}
    plans = {}
    for p in problem_names:
        n = steps if steps is not None else recipes[p].steps
        probe = probe_steps if probe_steps is not None else max(1, min(1000, n // 2))
        if not 0 < probe <= n:
            raise ValueError(f"need 0 < probe_steps <= steps, got {probe} and {n} ({p})")
        if GUARDED in strategies:
            _check_trials(p, n, probe, run_options or {}, recipes.get(p))
        if ESCALATED in strategies:
            _check_escalation(p, n, probe, recipes.get(p))
        plans[p] = (n, probe, recipes[p].digest if recipe is not None else None)
    opts = tuple(sorted((options or {}).items()))
    cells = []
    for p in problem_names:
        n, probe, digest = plans[p]
        for seed in seeds:
            for s in strategies:
                # trial options only where they act, so other cells keep their keys
                run_opts = {
                    k: v
                    for k, v in (run_options or {}).items()
                    if (s == GUARDED or k not in _GUARDED_ONLY)
                    and (s in _AUTO or k not in _AUTO_ONLY)
                }
                ordered = tuple(sorted(run_opts.items()))
                cells.append(Cell(p, s, seed, n, probe, opts, ordered, recipe, digest))
    return cells


def _check_escalation(problem: str, steps: int, probe: int, recipe: Any) -> None:
    """What an ``auto-escalate`` cell's setup would refuse: no step for the escalation window
    (as ``lightning-pinn run`` shortens it) between the probe and the run's end or the
    recipe's L-BFGS phase."""
    lbfgs = recipe.lbfgs if recipe is not None else None
    after = lbfgs_phase(lbfgs, steps)["after"] if lbfgs is not None else None
    if escalation_room(steps, probe, after) < 1:
        raise ValueError(
            f"{problem}: auto-escalate cells of {steps} steps leave no step for the escalation "
            f"window after the probe ({probe}) and before the run's end or the L-BFGS phase; "
            "lower --probe-steps or raise --steps"
        )


def _check_trials(
    problem: str, steps: int, probe: int, run_options: Mapping[str, Any], recipe: Any
) -> None:
    """What an ``auto-guarded`` cell's setup would refuse (default candidates and
    interventions), raised before any cell runs."""
    trial = _trial_steps(steps, run_options)
    interventions = intervention_map(None)
    most = max_candidates(None, interventions)
    if probe + most * trial >= steps:
        raise ValueError(
            f"{problem}: auto-guarded cells of {steps} steps leave no step after the probe "
            f"({probe}) and up to {most} trials of {trial} steps; lower --trial-steps "
            "or --probe-steps, or raise --steps"
        )
    if recipe is not None and recipe.lbfgs is not None:
        # placed as `lightning-pinn run` places it: on the steps the losing trials leave
        module_steps = steps - max_discarded_steps(trial, None, interventions)
        after = lbfgs_phase(recipe.lbfgs, module_steps)["after"]
        if after < probe + trial:
            raise ValueError(
                f"{problem}: the recipe's L-BFGS phase starts at step {after}, before the "
                f"guarded trials end (probe {probe} + {trial}); lower --trial-steps or "
                "--probe-steps"
            )


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
    records = load_results(results)
    done = {r["key"] for r in records} | {
        _without_digest(r["key"]) for r in current_records(records)
    }
    todo = [c for c in cells if c.key not in done and _without_digest(c.key) not in done]
    cores = os.cpu_count() or 1
    jobs = max(1, jobs or cores // 2)
    threads = threads or default_threads(jobs)
    if (notice := oversubscription(threads, jobs)) is not None:
        logging.getLogger("lightning_pinn").warning(f"benchmark: {notice}")
    bar = None
    if progress:
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="benchmark cells")
    _drop_cut_record(results)  # load_results skipped it; the cell runs again
    with results.open("a") as sink:
        if jobs == 1:
            for cell in todo:
                _append(sink, _run_cell(cell, str(out), threads, points), bar)
        else:
            with worker_pool(jobs) as pool:
                futures = [pool.submit(_run_cell, c, str(out), threads, points) for c in todo]
                try:
                    for future in cf.as_completed(futures):
                        _append(sink, future.result(), bar)
                except BaseException:
                    # A failed cell (or Ctrl-C) ends the run now: the queued cells are
                    # cancelled instead of run to the end before the error surfaces.
                    for future in futures:
                        future.cancel()
                    raise
    if bar is not None:
        bar.close()
    return load_results(results)


def worker_pool(jobs: int) -> cf.ProcessPoolExecutor:
    """A pool of ``jobs`` spawned processes that exit when the process that made them dies.

    Killing a benchmark (``kill PID``, a job scheduler's time limit) kills only the parent; its
    workers would otherwise train their cells to the end on cores nobody reads, and a worker
    inside Lightning ignores ``SIGTERM``. Each worker polls its parent (once a second, in a
    daemon thread) and exits when it has gone."""
    ctx = mp.get_context("spawn")
    return cf.ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_exit_with_parent, initargs=(os.getpid(),)
    )


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _append(sink: TextIO, record: dict, bar: tqdm | None) -> None:
    sink.write(json.dumps(record) + "\n")
    sink.flush()
    if bar is not None:
        bar.update(1)
