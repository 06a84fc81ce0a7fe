"""How well the guarded switch's trial scores predict final errors, per score.

    python benchmarks/trial_scores.py RESULTS.jsonl [RESULTS.jsonl ...]

For every ``auto-guarded`` record (one configuration and seed), each trial score
(``geomean``, ``sum``, ``residual``; ``lightning_pinn.diagnostics.trial_score``) is recomputed
from the trial's held-out losses. All candidates share the same losses before the trials, so
each score's ranking of the candidates follows from the losses after them: ``geomean`` ranks
by the sum of log losses, ``sum`` by the sum of losses, ``residual`` by the first loss. The
ranking is compared with the final rel L2 of the *fixed-strategy* runs of the same
configuration and seed (``none``, ``reweight``, ``adapters``, ...: a proxy for where each
candidate's trial would have ended):

- ``pick``: the share of (configuration, seed) where the score's best candidate has a final
  error within 1.25x of the best tried candidate's;
- ``spearman``: the mean rank correlation between score and final error (1: a perfect
  predictor); and the same against each candidate's final error averaged over its seeds
  (geometric mean; cases where every candidate has two seeds or more), which one run's
  noise does not blur.

Both on the calibration and the held-out half (:func:`lightning_pinn.benchmark.split_configs`);
choose the score on the calibration half. Prints a markdown table.

A second table replays the margin (``ConflictCallback(trial_margin=m)``): the diagnosis's
first-ranked candidate is kept unless another's score times ``1 + m`` is below its own. For each
score and margin it gives ``pick`` as above and the geometric mean of the picked candidates'
final errors. ``m = inf`` is the diagnosis alone among the tried candidates.

A third table replays shorter trials: records made since the trial rows carry ``during`` (the
held-out losses after 1/4, 1/2 and 3/4 of each trial, equal to what trials that short would
have ended with) give ``pick`` and the geometric-mean error per fraction of the trial length
run, on the cases that have them.

A fourth table separates the choice from the training after it: each guarded run's final error
against the fixed-strategy run of the candidate it kept (same configuration and seed), and
against ``auto`` where ``auto`` switched to the same strategy. A ratio near 1 says the trials'
steps (taken from the run's budget) and the switch after them cost nothing; misses then come
from the choice.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lightning_pinn.benchmark import (
    GUARDED,
    TOLERANCE,
    column,
    current_records,
    load_results,
    split_configs,
)

SCORES = ("geomean", "sum", "residual")
MARGINS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0, math.inf)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def score_key(losses: Sequence[float], how: str) -> float:
    """A value that orders candidates as the trial score ``how`` does (lower is better)."""
    if not all(math.isfinite(x) for x in losses):
        return math.inf
    if how == "geomean":
        return sum(math.log(max(x, 1e-300)) for x in losses) / len(losses)
    if how == "sum":
        return sum(losses)
    return losses[0]


def score_value(losses: Sequence[float], how: str) -> float:
    """The trial score up to a factor shared by all candidates (their losses before the trials
    are the same), so ratios between candidates are the callback's."""
    key = score_key(losses, how)
    return math.exp(key) if how == "geomean" else key


def pick_with_margin(values: Sequence[float], margin: float) -> int:
    """The callback's choice: index 0 (the diagnosis's first) unless beaten by ``1 + margin``."""
    best = min(range(len(values)), key=lambda i: values[i])
    return 0 if values[0] <= values[best] * (1.0 + margin) else best


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (``None`` with fewer than 2 points or a constant side)."""
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def cases(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One case per guarded record: its candidates' held-out losses and fixed-run finals."""
    records = list(records)
    finals = {(r["problem"], column(r), r["seed"]): r["rel_l2"] for r in records}
    out = []
    for r in records:
        trial = (r.get("report") or {}).get("trial")
        if column(r) != GUARDED or not trial:
            continue
        trial = sorted(trial, key=lambda t: t.get("rank", 0))  # the diagnosis's order
        ran = {t["candidate"]: finals.get((r["problem"], t["candidate"], r["seed"])) for t in trial}
        kept = [t for t in trial if ran[t["candidate"]] is not None]
        rows = [(t["candidate"], list(t["losses"].values()), ran[t["candidate"]]) for t in kept]
        steps = r["report"].get("trial_steps") or 0
        during = [
            {round(d["steps"] / steps, 2): list(d["losses"].values()) for d in t.get("during", ())}
            for t in kept
        ]
        if len(rows) >= 2:
            out.append({"config": r["problem"], "seed": r["seed"], "rows": rows, "during": during})
    return out


def _seed_averaged(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """(config, strategy) -> the geometric mean of its final rel L2 over seeds, for the cells
    with two seeds or more."""
    runs: dict[tuple[str, str], list[float]] = {}
    for r in records:
        runs.setdefault((r["problem"], column(r)), []).append(r["rel_l2"])
    return {
        k: math.exp(statistics.fmean(math.log(max(v, 1e-300)) for v in vals))
        for k, vals in runs.items()
        if len(vals) >= 2
    }


def evaluate(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{score: {"calibration": {...}, "held_out": {...}}}`` with ``pick``, ``spearman``, ``n``,
    and ``spearman_avg``/``n_avg``: the rank correlation with each candidate's *seed-averaged*
    final error (geometric mean over its seeds) instead of the same seed's, on the cases where
    every candidate has two seeds or more (a score that carries signal about a strategy's
    quality should show it there, free of one run's noise)."""
    records = list(records)
    averaged = _seed_averaged(records)
    all_cases = cases(records)
    calib, held = split_configs(sorted({c["config"] for c in all_cases}))
    result: dict[str, dict[str, Any]] = {}
    for how in SCORES:
        result[how] = {}
        for half, configs in (("calibration", calib), ("held_out", held)):
            picks, rhos, rhos_avg = [], [], []
            for case in (c for c in all_cases if c["config"] in configs):
                keys = [score_key(losses, how) for _, losses, _ in case["rows"]]
                errors = [final for _, _, final in case["rows"]]
                chosen = min(range(len(keys)), key=lambda i: keys[i])
                picks.append(errors[chosen] <= TOLERANCE * min(errors))
                if (rho := spearman(keys, errors)) is not None:
                    rhos.append(rho)
                avg = [averaged.get((case["config"], name)) for name, _, _ in case["rows"]]
                if None not in avg and (rho := spearman(keys, avg)) is not None:
                    rhos_avg.append(rho)
            result[how][half] = {
                "pick": sum(picks) / len(picks) if picks else None,
                "spearman": statistics.fmean(rhos) if rhos else None,
                "n": len(picks),
                "spearman_avg": statistics.fmean(rhos_avg) if rhos_avg else None,
                "n_avg": len(rhos_avg),
            }
    return result


def _replay(chosen: Iterable[tuple[list[float], int]]) -> dict[str, Any]:
    """``pick``, ``geomean_error`` and ``n`` over ``(final errors, index chosen)`` pairs."""
    picks, logs = [], []
    for errors, index in chosen:
        picks.append(errors[index] <= TOLERANCE * min(errors))
        logs.append(math.log(max(errors[index], 1e-300)))
    return {
        "pick": sum(picks) / len(picks) if picks else None,
        "geomean_error": math.exp(statistics.fmean(logs)) if logs else None,
        "n": len(picks),
    }


def _by_half(
    all_cases: list[dict[str, Any]], choose: Callable[[dict[str, Any]], int | None]
) -> dict[str, dict[str, Any]]:
    """:func:`_replay` per half; ``choose(case)`` is the index picked, ``None`` to skip it."""
    calib, held = split_configs(sorted({c["config"] for c in all_cases}))
    out = {}
    for half, configs in (("calibration", calib), ("held_out", held)):
        chosen = ((c, choose(c)) for c in all_cases if c["config"] in configs)
        out[half] = _replay(
            ([final for _, _, final in c["rows"]], i) for c, i in chosen if i is not None
        )
    return out


def evaluate_margins(
    records: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, float], dict[str, dict[str, Any]]]:
    """``{(score, margin): {half: {"pick", "geomean_error", "n"}}}`` over the guarded cases
    whose diagnosis-ranked first candidate has a fixed-strategy run."""
    all_cases = cases(records)
    return {
        (how, margin): _by_half(
            all_cases,
            lambda c, how=how, margin=margin: pick_with_margin(
                [score_value(losses, how) for _, losses, _ in c["rows"]], margin
            ),
        )
        for how in SCORES
        for margin in MARGINS
    }


def evaluate_lengths(
    records: Iterable[Mapping[str, Any]], how: str = "geomean", margin: float = 0.0
) -> dict[float, dict[str, dict[str, Any]]]:
    """``{fraction: {half: {"pick", "geomean_error", "n"}}}``: the choice had the trials been
    stopped at that fraction of their length, on the cases whose rows all carry it."""

    def choose(case: dict[str, Any], fraction: float) -> int | None:
        if not all(case["during"]):  # compare like with like: every row has them, or skip
            return None
        if fraction == 1.0:
            losses = [row[1] for row in case["rows"]]
        elif all(fraction in d for d in case["during"]):
            losses = [d[fraction] for d in case["during"]]
        else:
            return None
        return pick_with_margin([score_value(x, how) for x in losses], margin)

    all_cases = cases(records)
    return {f: _by_half(all_cases, lambda c, f=f: choose(c, f)) for f in FRACTIONS}


def choice_vs_training(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{half: {"n_fixed", "fixed", "n_auto", "auto"}}``: geometric means of a guarded run's
    final rel L2 over the fixed run of its kept strategy (``fixed``) and over ``auto``'s run
    when that ended on the same strategy (``auto``), per half; ``None`` without cases."""
    records = list(records)
    runs = {(r["problem"], column(r), r["seed"]): r for r in records}
    calib, held = split_configs(sorted({r["problem"] for r in records}))
    out: dict[str, dict[str, Any]] = {}
    for half, configs in (("calibration", calib), ("held_out", held)):
        fixed, auto = [], []
        for (problem, strategy, seed), r in runs.items():
            if strategy != GUARDED or problem not in configs:
                continue
            kept = r.get("final_strategy")
            if (other := runs.get((problem, kept, seed))) is not None:
                fixed.append(math.log(r["rel_l2"] / other["rel_l2"]))
            same = runs.get((problem, "auto", seed))
            if same is not None and same.get("final_strategy") == kept:
                auto.append(math.log(r["rel_l2"] / same["rel_l2"]))
        out[half] = {
            "n_fixed": len(fixed),
            "fixed": math.exp(statistics.fmean(fixed)) if fixed else None,
            "n_auto": len(auto),
            "auto": math.exp(statistics.fmean(auto)) if auto else None,
        }
    return out


def main(argv: list[str]) -> None:
    if not argv:
        print(__doc__)
        return
    records = current_records([r for path in argv for r in load_results(path)])
    result = evaluate(records)

    def fmt(x: float | None, pct: bool) -> str:
        return "—" if x is None else (f"{x:.0%}" if pct else f"{x:.2f}")

    print(
        "| score | calibration pick | calibration spearman | held-out pick "
        "| held-out spearman | cases (cal / held) | spearman vs seed-averaged error (cal / held) "
        "| cases (cal / held) |"
    )
    print("|---|---:|---:|---:|---:|---|---|---|")
    for how, halves in result.items():
        c, h = halves["calibration"], halves["held_out"]
        print(
            f"| {how} | {fmt(c['pick'], True)} | {fmt(c['spearman'], False)} | "
            f"{fmt(h['pick'], True)} | {fmt(h['spearman'], False)} | {c['n']} / {h['n']} | "
            f"{fmt(c['spearman_avg'], False)} / {fmt(h['spearman_avg'], False)} | "
            f"{c['n_avg']} / {h['n_avg']} |"
        )
    _print_replay(
        "| score | margin |",
        {f"| {how} | {margin:g} |": v for (how, margin), v in evaluate_margins(records).items()},
    )
    _print_replay(
        "| trial length (fraction run) |",
        {f"| {fraction:g} |": v for fraction, v in evaluate_lengths(records).items()},
    )
    print()
    print(
        "| half | guarded / fixed run of the kept strategy (geomean) | cases "
        "| guarded / auto, same final strategy (geomean) | cases |"
    )
    print("|---|---:|---:|---:|---:|")
    for half, v in choice_vs_training(records).items():
        print(
            f"| {half} | {fmt(v['fixed'], False)} | {v['n_fixed']} | {fmt(v['auto'], False)} "
            f"| {v['n_auto']} |"
        )


def _print_replay(head: str, rows: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """A markdown table of :func:`_replay` results per half, one row per labelled setting."""

    def cell(x: Mapping[str, Any]) -> str:
        pick = "—" if x["pick"] is None else f"{x['pick']:.0%}"
        err = "—" if x["geomean_error"] is None else f"{x['geomean_error']:.3g}"
        return f" {pick} | {err} |"

    print()
    print(
        f"{head} calibration pick | calibration geomean error | held-out pick "
        "| held-out geomean error | cases (cal / held) |"
    )
    print("|" + "---|" * (head.count("|") - 1) + "---:|" * 4 + "---|")
    for label, halves in rows.items():
        c, h = halves["calibration"], halves["held_out"]
        print(f"{label}{cell(c)}{cell(h)} {c['n']} / {h['n']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
