"""The accuracy table of issue 13: our rel L2 next to the published numbers.

    python benchmarks/accuracy.py [--problems burgers,helmholtz] [--seeds 0,1,2] [--jobs 1]
                                  [--budget-scale 1.0] [--recipe default] [--out FILE]
    python benchmarks/accuracy.py --table-only [--out FILE]

One cell is one problem row and one seed: ``lightning-pinn run``'s training
(:func:`lightning_pinn.run.run_experiment`) with the problem's recipe
(``examples/recipes/``; ``--recipe vanilla`` for the set-up before recipes) at
``round(recipe steps x --budget-scale)`` steps, on one thread (``torch.set_num_threads(1)``)
in its own process; ``--jobs N`` runs at most N cells at once (on a shared 2-core machine keep
N <= the free cores: two multi-threaded processes on 2 cores were about 20x slower). Each
finished cell is appended to ``--out`` as one JSON line (default ``docs/data/accuracy.jsonl``,
committed like the regime map's records) and a re-run skips the cells already there, so a long
measurement continues where it stopped. The table gives, per row, the median over the seeds
found of the final rel L2, the training wall time, the cell's CPU time (one thread: what the
wall time would be on a free core; it does not grow when other work shares the cores) and
the steps trained, and the published number with its recipe and hardware (issue 13). Records
carry the recipe's digest (of its settings; comments do not count): after a recipe's settings
change, its row is run again and only the records of the current version are tabled.

The full table is hours of CPU: run it on a machine you do not share, or a row at a time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning_pinn.benchmark import machine, worker_pool

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "data" / "accuracy.jsonl"


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row: a registered problem, the step budget, the published result."""

    label: str
    problem: str
    published: str
    reference: str
    max_steps: int | None = None  # None: the recipe's steps


ROWS: tuple[Row, ...] = (
    Row("burgers", "burgers", "6.7e-4", "Raissi 2019: L-BFGS, 9x20 tanh; CPU-sized"),
    Row(
        "helmholtz (1, 4)",
        "helmholtz",
        "1.49e-3",
        "Wang, Teng & Perdikaris 2021: modified MLP + learning-rate annealing, "
        "40 000 Adam steps, laptop CPU",
    ),
    Row("klein_gordon", "klein_gordon", "2.81e-3", "same paper, 1 040 s on a laptop CPU"),
    Row(
        "convection b=40",
        "convection-b40",
        "4.19e-3 (Adam + L-BFGS), 1.94e-3 (+ NNCG)",
        "Rathore et al. ICML 2024",
    ),
    Row("wave", "wave", "-", "- (issue 13 target <= 1e-2)"),
    Row(
        "allen_cahn",
        "allen_cahn",
        "5.37e-5",
        'Wang et al. 2023, "An expert\'s guide to training PINNs" (jaxpi), GPU',
    ),
)
ROW_KEYS = {r.label.split()[0]: r for r in ROWS}
"""``--problems`` names: burgers, helmholtz, klein_gordon, convection, wave, allen_cahn. (The
README's main job, ``lightning-pinn run burgers``, is the burgers row's set-up.)"""


def cell_key(row: str, seed: int, budget_scale: float, recipe: str, digest: str) -> tuple:
    """What identifies a cell in the records (a re-run skips the keys already there).

    ``digest`` identifies the recipe file's content: a changed recipe gets new cells, and
    the records of its earlier versions stay in the file as history, out of the table.
    """
    return (row, int(seed), float(budget_scale), recipe, digest)


def recipe_digest(row_key: str, recipe: str = "default") -> str:
    """The first 12 hex digits of the SHA-1 of the recipe file this row trains with."""
    from lightning_pinn.run import load_recipe

    return load_recipe(ROW_KEYS[row_key].problem, recipe).digest


def run_cell(
    row_key: str,
    seed: int,
    budget_scale: float,
    recipe: str = "default",
    points: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Train one cell on one thread and return its record (JSON-ready)."""
    import torch

    torch.set_num_threads(1)
    from lightning_pinn.run import RunConfig, apply_recipe, load_recipe, run_experiment

    row = ROW_KEYS[row_key]
    loaded = load_recipe(row.problem, recipe)
    steps = max(2, round((row.max_steps or loaded.steps) * budget_scale))
    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig(
            problem=row.problem,
            seed=seed,
            max_steps=steps,
            points=points,
            logger="none",
            out=out,
            progress_bar=False,
            checkpoint=False,
            plots=False,
            threads=1,
        )
        given = {"max_steps"} | ({"points"} if points else set())
        cpu = time.process_time()
        summary = run_experiment(apply_recipe(cfg, loaded, given))
        cpu = time.process_time() - cpu
    return {
        "row": row.label,
        "key": row_key,
        "problem": row.problem,
        "recipe": recipe,
        "recipe_file": loaded.name,
        "recipe_digest": recipe_digest(row_key, recipe),
        "seed": seed,
        "budget_scale": budget_scale,
        "max_steps": steps,
        "steps": summary["steps"],
        "rel_l2": summary["rel_l2"],
        "wall_time_s": summary["wall_time_s"],
        "cpu_time_s": cpu,
        "threads": summary["threads"],
        "final_strategy": summary["final_strategy"],
        "machine": machine(),
        "torch": torch.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records in ``path`` (none when it does not exist; a torn last line is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def table(
    records: list[dict[str, Any]], recipe: str = "default", digests: dict[str, str] | None = None
) -> list[str]:
    """Markdown rows: median over the seeds of rel L2, wall time and steps, beside the
    published number and its recipe/hardware. Rows without records show ``not run``.
    ``digests`` (row label -> recipe digest): only records of those recipe versions count."""
    lines = [
        "| problem | ours: rel L2 (median) | wall time (s) | CPU time (s) | steps | seeds | "
        "published | published recipe, hardware |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for row in ROWS:
        cells = [
            r
            for r in records
            if r["row"] == row.label
            and r["recipe"] == recipe
            and (digests is None or r.get("recipe_digest") == digests.get(row.label))
        ]
        if not cells:
            lines.append(f"| {row.label} | not run | | | | | {row.published} | {row.reference} |")
            continue
        rel = statistics.median(r["rel_l2"] for r in cells)
        wall = statistics.median(r["wall_time_s"] for r in cells)
        steps = statistics.median(r["steps"] for r in cells)
        cpus = [r["cpu_time_s"] for r in cells if "cpu_time_s" in r]
        cpu = f"{statistics.median(cpus):.0f}" if cpus else "-"
        seeds = ",".join(str(r["seed"]) for r in sorted(cells, key=lambda r: r["seed"]))
        lines.append(
            f"| {row.label} | {rel:.2e} | {wall:.0f} | {cpu} | {steps:.0f} | {seeds} | "
            f"{row.published} | {row.reference} |"
        )
    return lines


def _parse_points(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    return {k: int(v) for k, v in (p.split("=") for p in text.split(","))}


def _cells(
    todo: list[tuple[str, int]],
    jobs: int,
    budget_scale: float,
    recipe: str,
    points: dict[str, int] | None,
) -> Iterator[dict[str, Any]]:
    """The records of ``todo`` as they finish: in this process with one job, else in at most
    ``jobs`` spawned processes."""
    if jobs == 1:
        for key, seed in todo:
            yield run_cell(key, seed, budget_scale, recipe, points)
        return
    with worker_pool(jobs) as pool:
        futures = [pool.submit(run_cell, k, s, budget_scale, recipe, points) for k, s in todo]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--problems",
        default=",".join(ROW_KEYS),
        help=f"rows, comma-separated, from {', '.join(ROW_KEYS)} (default: all)",
    )
    parser.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated (default 0,1,2)")
    parser.add_argument(
        "--budget-scale", type=float, default=1.0, help="steps = recipe steps x this (default 1)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="cells at once, one thread each")
    parser.add_argument(
        "--recipe", default="default", help="default (each problem's), vanilla, or a name/path"
    )
    parser.add_argument("--points", default=None, help="NAME=COUNT,... for every cell (tests)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON-lines records")
    parser.add_argument("--table-only", action="store_true", help="print the table, run nothing")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.problems.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ROW_KEYS]
    if unknown:
        parser.error(f"unknown row(s) {unknown}; valid: {', '.join(ROW_KEYS)}")
    if args.jobs < 1 or args.budget_scale <= 0:
        parser.error("--jobs must be >= 1 and --budget-scale > 0")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.table_only:
        done = {
            cell_key(r["key"], r["seed"], r["budget_scale"], r["recipe"], r.get("recipe_digest"))
            for r in read_records(args.out)
        }
        todo = [
            (k, s)
            for k in keys
            for s in seeds
            if cell_key(k, s, args.budget_scale, args.recipe, recipe_digest(k, args.recipe))
            not in done
        ]
        skipped = len(keys) * len(seeds) - len(todo)
        print(f"{len(todo)} cell(s) to run, {skipped} already in {args.out}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        points = _parse_points(args.points)
        for record in _cells(todo, args.jobs, args.budget_scale, args.recipe, points):
            with args.out.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(
                f"{record['row']} seed {record['seed']}: rel L2 {record['rel_l2']:.3e}, "
                f"{record['wall_time_s']:.0f} s, {record['steps']} steps",
                flush=True,
            )
    records = [r for r in read_records(args.out) if r["budget_scale"] == args.budget_scale]
    machines = sorted({str(r.get("machine")) for r in records if r.get("machine")})
    print(
        f"\nrecipe {args.recipe}, budget scale {args.budget_scale}, one thread per run; "
        f"machines in the records: {'; '.join(machines) if machines else machine()} (each "
        "record names its own)\n"
    )
    digests = {ROW_KEYS[k].label: recipe_digest(k, args.recipe) for k in ROW_KEYS}
    print("\n".join(table(records, args.recipe, digests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
