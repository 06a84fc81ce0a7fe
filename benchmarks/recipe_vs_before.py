"""Issue 13's last target: is every configuration under its recipe no worse than before?

    python benchmarks/recipe_vs_before.py MAP.jsonl[,ACCURACY.jsonl] BEFORE.jsonl [BEFORE.jsonl ...]

``MAP.jsonl`` holds the regime map under the recipes (``benchmarks/recipe_map.sh map``,
``docs/data/recipe_map.jsonl``); for each configuration its *recipe's own* strategy is read
from the recipe (``auto`` for ``default.yaml``; ``reweight`` for the helmholtz, klein_gordon,
convection, wave and allen_cahn recipes) and its median rel L2 over the seeds taken. The
``BEFORE`` files are the records measured before the recipes (``docs/data/regime_map.jsonl``,
``long_budget*.jsonl``, the ablations): "before" is the lowest median over seeds of any
(file, strategy) of the configuration. Prints one row per configuration with the ratio
(recipe / before; <= 1: no worse) and a count at the end. Configurations the map has not yet
run under their recipe's strategy print ``not run``. Records of ``benchmarks/accuracy.py``
(``docs/data/accuracy.jsonl``, comma-joined to the map) count as recipe runs when they were made
with the current recipe file at full budget.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from lightning_pinn.benchmark import column, current_records, load_results
from lightning_pinn.run import load_recipe


def best_before(files: Iterable[Iterable[Mapping[str, Any]]]) -> dict[str, tuple[float, str]]:
    """Per configuration: the lowest median rel L2 over seeds of any (file, strategy), and
    which strategy (and budget) it was."""
    best: dict[str, tuple[float, str]] = {}
    for index, records in enumerate(files):
        groups: dict[tuple[str, str, int], list[float]] = defaultdict(list)
        for r in records:
            steps = r.get("max_steps") or r.get("steps")
            groups[(r["problem"], column(r), steps)].append(r["rel_l2"])
        for (problem, strategy, steps), values in groups.items():
            median = statistics.median(values)
            if problem not in best or median < best[problem][0]:
                best[problem] = (median, f"{strategy}, {steps} steps (file {index + 1})")
    return best


def recipe_medians(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, str, int]]:
    """Per configuration: the median rel L2 of its recipe's own strategy, and the seed count."""
    groups: dict[str, list[float]] = defaultdict(list)
    own: dict[str, str] = {}
    for r in records:
        problem = r["problem"]
        if problem not in own:
            own[problem] = load_recipe(problem).strategy
        if "strategy" not in r:  # an accuracy.py record: the recipe as it is, or skipped
            current = r.get("recipe") == "default" and r.get("budget_scale") == 1.0
            if current and r.get("recipe_digest") == load_recipe(problem).digest:
                groups[problem].append(r["rel_l2"])
        elif column(r) == own[problem]:
            groups[problem].append(r["rel_l2"])
    return {p: (statistics.median(v), own[p], len(v)) for p, v in groups.items()}


def rows(
    recipe: Mapping[str, tuple[float, str, int]], before: Mapping[str, tuple[float, str]]
) -> list[list[str]]:
    out = []
    for problem in sorted(set(recipe) | set(before)):
        was = before.get(problem)
        now = recipe.get(problem)
        if now is None:
            out.append([problem, "not run", "—", f"{was[0]:.3g} ({was[1]})" if was else "—", "—"])
            continue
        cells = [problem, f"{now[0]:.3g}", f"{now[1]}, {now[2]} seeds"]
        if was is None:
            out.append([*cells, "—", "—"])
        else:
            out.append([*cells, f"{was[0]:.3g} ({was[1]})", f"{now[0] / was[0]:.2f}"])
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        print(__doc__)
        return
    recipe = recipe_medians(
        current_records([r for path in argv[0].split(",") for r in load_results(path)])
    )
    before = best_before(load_results(path) for path in argv[1:])
    table = rows(recipe, before)
    print("| configuration | recipe median rel L2 | recipe's strategy | best before | ratio |")
    print("|---|---:|---|---|---:|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    compared = [r for r in table if r[4] != "—"]
    no_worse = sum(float(r[4]) <= 1.0 for r in compared)
    print(f"\nno worse than before: {no_worse} of {len(compared)} configurations run so far")


if __name__ == "__main__":
    main(sys.argv[1:])
