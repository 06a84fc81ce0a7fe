"""Issue 16's targets, per half of the regime map: the guarded switch and the diagnosis rules.

    python benchmarks/targets16.py RESULTS.jsonl [RESULTS.jsonl ...] [--seed N ...]

For the calibration and the held-out half (:func:`lightning_pinn.benchmark.split_configs`),
over the configurations where ``none``, ``reweight`` and ``adapters`` all ran: a table of the
median rel L2 per strategy, the best of the three and the picks of the named diagnosis rules
(:data:`lightning_pinn.diagnostics.RULES`); then the targets:

- ``auto-guarded`` within 1.25x of the best (target >= 90 %) and within 1.25x of ``none``
  (target: always);
- the geometric-mean rel L2 of ``auto-guarded`` against the best constant strategy's, over the
  configurations where ``auto-guarded`` and every constant strategy ran;
- the same three for every ``auto`` mode (``auto``, ``auto-guarded``, ``auto-escalate``, and
  variants such as ``auto[reprobe_every=500]``: :func:`lightning_pinn.benchmark.column`), each
  over the configurations where it ran;
- each rule's selection accuracy (the diagnosis alone; target >= 85 %);
- per run (each seed on its own), how badly every strategy and ``auto`` mode can lose: the
  counts within 1.25x, 3x and 10x of the same seed's best of the three and the worst ratio.

``--seed N`` (repeatable) keeps only those seeds' records, so each seed can be read as a
replicate of its own (the medians are otherwise over every seed a cell has).

Nothing here chooses anything: the rules were fixed before (``rule_families.py``).
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lightning_pinn.benchmark import (
    COMPARED,
    ESCALATED,
    GUARDED,
    TOLERANCE,
    column,
    current_records,
    diagnose_report,
    load_results,
    selection_accuracy,
    split_configs,
)
from lightning_pinn.diagnostics import RULES

COLUMNS = (*COMPARED, "surgery", "auto", GUARDED)
CONSTANT = (*COMPARED, "surgery")
MODES = ("auto", GUARDED, ESCALATED)


def _rule(name: str):
    return lambda rep: diagnose_report(rep, **RULES[name]).strategy


def _geomean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(max(v, 1e-300)) for v in values))


def half_summary(records: Sequence[Mapping[str, Any]], configs: Sequence[str]) -> dict[str, Any]:
    """Rows, rule accuracies and the guarded switch's targets on ``configs``."""
    by_rule = {
        name: selection_accuracy(records, configs=configs, rule=_rule(name)) for name in RULES
    }
    rows = next(iter(by_rule.values()))["rows"]
    picks = {name: {r["config"]: r["pick"] for r in res["rows"]} for name, res in by_rule.items()}
    guarded = [r for r in rows if r["guarded_median"] is not None]
    complete = [r for r in guarded if all(s in r["all_medians"] for s in COLUMNS)]
    geo = (
        {s: _geomean([r["all_medians"][s] for r in complete]) for s in COLUMNS} if complete else {}
    )
    best_constant = min(CONSTANT, key=lambda s: geo[s]) if geo else None
    modes = {
        mode: mode_targets(rows, mode)
        for mode in (*MODES, *_variants(c for r in rows for c in r["all_medians"]))
    }
    return {
        "rows": rows,
        "picks": picks,
        "accuracy": {name: res["accuracy"] for name, res in by_rule.items()},
        "always": next(iter(by_rule.values()))["constant_pick_accuracy"],
        "guarded_hits": modes[GUARDED]["hits"],
        "guarded_within_none": modes[GUARDED]["within_none"],
        "auto_hits": modes["auto"]["hits"],
        "n_auto": modes["auto"]["n"],
        "n_guarded": modes[GUARDED]["n"],
        "geomean": geo,
        "geomean_configs": len(complete),
        "best_constant": best_constant,
        "modes": modes,
    }


def _variants(columns: Iterable[str]) -> list[str]:
    """The variant columns among ``columns`` (:func:`~lightning_pinn.benchmark.column` names
    them ``mode[options]``, e.g. ``auto[reprobe_every=500]``), sorted."""
    return sorted({c for c in columns if "[" in c})


def mode_targets(rows: Sequence[Mapping[str, Any]], mode: str) -> dict[str, Any]:
    """Issue 16's three run targets for one ``auto`` mode, over the rows where it ran: within
    1.25x of the best, within 1.25x of ``none``, and its geometric mean against the best
    constant strategy's on the rows where every constant strategy ran too."""
    ran = [r for r in rows if mode in r["all_medians"]]
    best = [r["medians"][r["best"]] for r in ran]
    complete = [r for r in ran if all(s in r["all_medians"] for s in CONSTANT)]
    geo = (
        {s: _geomean([r["all_medians"][s] for r in complete]) for s in (*CONSTANT, mode)}
        if complete
        else {}
    )
    constant = min(CONSTANT, key=lambda s: geo[s]) if complete else None
    base = mode.split("[")[0]  # a variant's plain mode, on the same rows
    paired = [r for r in ran if base in r["all_medians"]] if base != mode else []
    return {
        "base": base if paired else None,
        "base_hits": sum(
            r["all_medians"][base] <= TOLERANCE * r["medians"][r["best"]] for r in paired
        ),
        "paired": len(paired),
        "paired_geomeans": (
            _geomean([r["all_medians"][mode] for r in paired]),
            _geomean([r["all_medians"][base] for r in paired]),
        )
        if paired
        else None,
        "n": len(ran),
        "hits": sum(
            r["all_medians"][mode] <= TOLERANCE * b for r, b in zip(ran, best, strict=True)
        ),
        "within_none": sum(r["all_medians"][mode] <= TOLERANCE * r["medians"]["none"] for r in ran),
        "geomean": geo[mode] if complete else None,
        "best_constant": constant,
        "best_constant_geomean": geo[constant] if complete else None,
        "geomean_configs": len(complete),
    }


def robustness(records: Sequence[Mapping[str, Any]], configs: Sequence[str]) -> dict[str, Any]:
    """How badly each strategy and ``auto`` mode can lose, per run: over every (configuration,
    seed) of ``configs`` where the compared strategies all ran, each run's rel L2 over the best
    of them on the same seed. Per strategy: ``n``, the counts within 1.25x, 3x and 10x, the
    worst ratio (and where) and the geometric mean of the ratios."""
    table: dict[tuple[str, int], dict[str, float]] = {}
    for r in records:
        if r["problem"] in configs and r.get("rel_l2") is not None:
            table.setdefault((r["problem"], r["seed"]), {})[column(r)] = r["rel_l2"]
    variants = _variants(c for row in table.values() for c in row)
    out: dict[str, Any] = {}
    for strategy in (*COLUMNS, ESCALATED, *variants):
        ratios = [
            (row[strategy] / min(row[s] for s in COMPARED), cell)
            for cell, row in sorted(table.items())
            if strategy in row and all(s in row for s in COMPARED)
        ]
        if not ratios:
            continue
        worst = max(ratios)
        out[strategy] = {
            "n": len(ratios),
            **{f"within_{t:g}": sum(x <= t for x, _ in ratios) for t in (TOLERANCE, 3, 10)},
            "worst": worst[0],
            "worst_at": f"{worst[1][0]} seed {worst[1][1]}",
            "geomean_ratio": _geomean([x for x, _ in ratios]),
        }
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="benchmark results files (JSON lines)")
    parser.add_argument(
        "--seed", type=int, action="append", help="keep only this seed (repeatable)"
    )
    args = parser.parse_args(argv)
    records = current_records([r for path in args.results for r in load_results(path)])
    if args.seed is not None:
        records = [r for r in records if r["seed"] in args.seed]
    configs = [r["config"] for r in selection_accuracy(records)["rows"]]
    for half, names in zip(("calibration", "held-out"), split_configs(configs), strict=True):
        s = half_summary(records, names)
        rules = list(RULES)
        print(f"\n### {half} half: {len(s['rows'])} configurations\n")
        print(
            "| config | "
            + " | ".join(COLUMNS)
            + " | best | "
            + " | ".join(f"{r} pick" for r in rules)
            + " |"
        )
        print("|---|" + "---:|" * len(COLUMNS) + "---|" + "---|" * len(rules))
        for r in s["rows"]:
            cells = [
                f"{r['all_medians'][c]:.3g}" if c in r["all_medians"] else "—" for c in COLUMNS
            ]
            pick = [s["picks"][name][r["config"]] for name in rules]
            print(
                f"| {r['config']} | "
                + " | ".join(cells)
                + f" | {r['best']} | "
                + " | ".join(pick)
                + " |"
            )
        n = s["n_guarded"]
        print()
        print(
            f"- auto-guarded within 1.25x of the best: {s['guarded_hits']}/{n}; within 1.25x of "
            f"none: {s['guarded_within_none']}/{n}; auto within 1.25x of the best: "
            f"{s['auto_hits']}/{s['n_auto']}"
        )
        if s["geomean"]:
            geo = ", ".join(
                f"{k} {v:.3g}" for k, v in sorted(s["geomean"].items(), key=lambda kv: kv[1])
            )
            print(
                f"- geometric-mean rel L2 over {s['geomean_configs']} configurations: {geo}; "
                f"best constant: {s['best_constant']}"
            )
        for mode, m in s["modes"].items():
            if not m["n"]:
                continue
            geo = (
                f"geometric mean {m['geomean']:.3g} vs {m['best_constant']} "
                f"{m['best_constant_geomean']:.3g} over {m['geomean_configs']}"
                if m["geomean"] is not None
                else "no geometric mean"
            )
            print(
                f"- {mode}: within 1.25x of the best {m['hits']}/{m['n']}, within 1.25x of none "
                f"{m['within_none']}/{m['n']}; {geo}"
            )
            if m["paired_geomeans"] is not None:
                mine, theirs = m["paired_geomeans"]
                print(
                    f"  - against plain {m['base']} on the same {m['paired']} configurations: "
                    f"within 1.25x of the best {m['hits']} vs {m['base_hits']}; geometric mean "
                    f"{mine:.3g} vs {theirs:.3g} (ratio {mine / theirs:.2f})"
                )
        acc = ", ".join(f"{name} {_pct(a)}" for name, a in s["accuracy"].items())
        always = ", ".join(f"always {k} {_pct(v)}" for k, v in s["always"].items())
        print(f"- diagnosis alone (selection accuracy): {acc}; {always}")
        rob = robustness(records, names)
        if rob:
            print(
                "\n| per run (each seed) | runs | within 1.25x of the best | within 3x "
                "| within 10x | worst ratio | geometric-mean ratio |"
            )
            print("|---|---:|---:|---:|---:|---|---:|")
            for name, v in rob.items():
                print(
                    f"| {name} | {v['n']} | {v['within_1.25']} | {v['within_3']} | "
                    f"{v['within_10']} | {v['worst']:.3g} ({v['worst_at']}) | "
                    f"{v['geomean_ratio']:.2f} |"
                )


if __name__ == "__main__":
    main()
