"""Markdown table of adapter ablations against the regime map's fixed strategies.

    python benchmarks/ablation_table.py MAP_DIR NAME=DIR [NAME=DIR ...]

(each DIR may also be a ``.jsonl`` results file, and ``NAME=FILE:STRATEGY`` takes one
strategy's records of a file, e.g. ``default=docs/data/recipe_map.jsonl:adapters``;
``--seed N`` compares seed N only; ``--half calibration|held-out`` keeps one half of the
registry's split, :func:`lightning_pinn.benchmark.split_configs`)

Below the table, each variant is paired run by run (same problem, same seed) with the map's
default ``adapters`` cell, its ``reweight`` cell and its ``none`` cell: the number of pairs,
the seeds they cover, the geometric mean of the ratios and how many pairs the variant wins.
Only records made with their recipe's current version count (``current_records``).

``MAP_DIR/results.jsonl`` holds the regime map (strategies none, reweight, adapters, ...);
each ``DIR/results.jsonl`` an ablation run of ``lightning-pinn benchmark --strategies adapters
--module-options ...``. Prints one row per problem: the median rel L2 over seeds of each
fixed strategy and of each ablation variant (``—`` where not run).
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict

from lightning_pinn.benchmark import current_records, load_results, split_configs


def _medians(records, strategy=None, seed=None):
    by_problem = defaultdict(list)
    for r in records:
        if seed is not None and r["seed"] != seed:
            continue
        if strategy is None or r["strategy"] == strategy:
            by_problem[r["problem"]].append(r["rel_l2"])
    return {p: statistics.median(v) for p, v in by_problem.items()}


def _by_run(records, strategy=None, seed=None):
    """``{(problem, seed): rel L2}`` of one strategy (``None``: every record)."""
    return {
        (r["problem"], r["seed"]): r["rel_l2"]
        for r in records
        if (seed is None or r["seed"] == seed) and (strategy is None or r["strategy"] == strategy)
    }


def _paired(name, variant, baseline, against):
    """One line: the variant against a baseline's cells of the same problem and seed."""
    keys = [k for k in sorted(variant) if k in baseline]
    if not keys:
        return f"| {name} | {against} | 0 | — | — | — |"
    pairs = [(variant[k], baseline[k]) for k in keys]
    seeds = sorted({seed for _, seed in keys})
    geo = math.exp(statistics.fmean(math.log(v / b) for v, b in pairs))
    wins = sum(v < b for v, b in pairs)
    return (
        f"| {name} | {against} | {len(pairs)} | {','.join(map(str, seeds))} | {geo:.3f} "
        f"| {wins} of {len(pairs)} |"
    )


def _path(where: str) -> str:
    """A results file, or a benchmark output folder holding ``results.jsonl``."""
    return where if where.endswith(".jsonl") else f"{where}/results.jsonl"


def _option(argv: list[str], flag: str) -> tuple[list[str], str | None]:
    """``argv`` without ``flag VALUE``, and the value (``None``: not given)."""
    if flag not in argv:
        return argv, None
    i = argv.index(flag)
    return argv[:i] + argv[i + 2 :], argv[i + 1]


def _load(spec: str) -> list[dict]:
    """Current records of ``DIR``, ``FILE.jsonl`` or ``FILE.jsonl:STRATEGY``."""
    where, _, strategy = spec.rpartition(":")
    if not where.endswith(".jsonl"):  # no strategy named (a folder, or a plain file)
        where, strategy = spec, ""
    records = current_records(load_results(_path(where)))
    return [r for r in records if not strategy or r["strategy"] == strategy]


def _in(records: list[dict], half: set[str] | None) -> list[dict]:
    """The records of the problems in ``half`` (``None``: all of them)."""
    return records if half is None else [r for r in records if r["problem"] in half]


def main(argv: list[str]) -> None:
    if not argv:
        print(__doc__)
        return
    argv, seed_text = _option(argv, "--seed")  # one seed only (the first ablations: seed 0)
    argv, half_name = _option(argv, "--half")
    seed = None if seed_text is None else int(seed_text)
    records, half = _load(argv[0]), None
    if half_name is not None:
        if half_name not in ("calibration", "held-out"):
            raise SystemExit(f"--half must be calibration or held-out, got {half_name!r}")
        calibration, held_out = split_configs(sorted({r["problem"] for r in records}))
        half = set(calibration if half_name == "calibration" else held_out)
    records = _in(records, half)
    columns = {s: _medians(records, s, seed) for s in ("none", "reweight", "adapters")}
    runs = {}
    for spec in argv[1:]:
        name, _, folder = spec.partition("=")
        variant = _in(_load(folder), half)
        columns[name] = _medians(variant, seed=seed)
        runs[name] = _by_run(variant, seed=seed)
    problems = sorted(
        {
            p
            for name, col in columns.items()
            if name not in ("none", "reweight", "adapters")
            for p in col
        }
    )
    print("| problem | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for p in problems:
        cells = [f"{columns[c][p]:.3g}" if p in columns[c] else "—" for c in columns]
        print(f"| {p} | " + " | ".join(cells) + " |")
    print()
    print("| variant | against | pairs | seeds | geo-mean ratio | variant wins |")
    print("|---|---|---:|---|---:|---:|")
    for against in ("adapters", "reweight", "none"):
        baseline = _by_run(records, against, seed)
        for name, variant in runs.items():
            print(_paired(name, variant, baseline, against))


if __name__ == "__main__":
    main(sys.argv[1:])
