"""Markdown table of adapter ablations against the regime map's fixed strategies.

    python benchmarks/ablation_table.py MAP_DIR NAME=DIR [NAME=DIR ...]

(each DIR may also be a ``.jsonl`` results file; ``--seed N`` compares seed N only)

``MAP_DIR/results.jsonl`` holds the regime map (strategies none, reweight, adapters, ...);
each ``DIR/results.jsonl`` an ablation run of ``lightning-pinn benchmark --strategies adapters
--module-options ...``. Prints one row per problem: the median rel L2 over seeds of each
fixed strategy and of each ablation variant (``—`` where not run).
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict

from lightning_pinn.benchmark import load_results


def _medians(records, strategy=None, seed=None):
    by_problem = defaultdict(list)
    for r in records:
        if seed is not None and r["seed"] != seed:
            continue
        if strategy is None or r["strategy"] == strategy:
            by_problem[r["problem"]].append(r["rel_l2"])
    return {p: statistics.median(v) for p, v in by_problem.items()}


def _path(where: str) -> str:
    """A results file, or a benchmark output folder holding ``results.jsonl``."""
    return where if where.endswith(".jsonl") else f"{where}/results.jsonl"


def main(argv: list[str]) -> None:
    if not argv:
        print(__doc__)
        return
    seed = None
    if "--seed" in argv:  # compare one seed only (the ablations ran seed 0)
        i = argv.index("--seed")
        seed = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    records = load_results(_path(argv[0]))
    columns = {s: _medians(records, s, seed) for s in ("none", "reweight", "adapters")}
    for spec in argv[1:]:
        name, _, folder = spec.partition("=")
        columns[name] = _medians(load_results(_path(folder)), seed=seed)
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


if __name__ == "__main__":
    main(sys.argv[1:])
