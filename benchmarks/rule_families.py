"""Alternative diagnosis rules, chosen on the calibration half, scored on the held-out half.

    python benchmarks/rule_families.py RESULTS.jsonl [RESULTS.jsonl ...]

Each family is a small grid of rules (probe report -> intervention). For every family the
parameters with the best selection accuracy on the calibration half
(:func:`lightning_pinn.benchmark.split_configs`) are kept and then scored once on the held-out
half; ties go to the first grid point, which is listed so that it is the default rule's
setting or closest to it. Prints a markdown table. Nothing is tuned on the held-out half.

One rule is then chosen across the families, on the calibration half only (fixed on
2026-11-29, before the held-out half was complete): the highest calibration accuracy; among
equal accuracies, the lowest calibration regret, the geometric mean over the calibration
configurations of (the pick's median rel L2 / the best's), which counts how far a miss lands
and not only whether it lands within 1.25x; then the family listed first. The ``always``
constant pickers compete as the ``remap`` family's grid points.

Families:
- ``design``: the default rule (docs/concepts.md) with thresholds ``tau_dir`` x ``tau_mag``
  (what ``calibrate`` does);
- ``cosine``: directional only when the conflicting pair's late mean cosine is <= -c (at run
  time: ``ConflictCallback(tau_dir=0.5, tau_cos=c, tau_mag=m)``);
- ``update``: directional when the share of probe steps where some loss is increased by the
  applied update (a_k < 0) is >= u (weigh conflict by its effect on the update: the report's a_k,
  docs/concepts.md);
- ``remap``: the default rule's regimes at the default thresholds, each regime mapped to any of
  ``none`` / ``reweight`` / ``adapters``;
- ``k2``: directional -> adapters only for K = 2 losses, otherwise a fixed alternative;
- ``alignment``: directional when the late mean gradient alignment score of Wang et al. 2025,
  ``A = 2 ||mean_k g_k / ||g_k|| ||^2 - 1`` (the report's ``late_mean_alignment``), is <= a;
- ``after-reweight``: directional when conflict remains *after* reweighting: the largest late
  conflict rate in the probe of the same seed's ``reweight`` run is >= t (configurations
  without a ``reweight`` probe fall back to the default rule).
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lightning_pinn.benchmark import (
    COMPARED,
    column,
    current_records,
    diagnose_report,
    load_results,
    selection_accuracy,
    split_configs,
)

Rule = Callable[[Mapping[str, Any]], str]
TAU_DIRS = (0.5, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9)
TAU_MAGS = (1.0, 0.25, 0.5, 0.75, 1.25, 1.5, 2.0)


def _regime(report: Mapping[str, Any]) -> str:
    return diagnose_report(report).regime.value


def _design(tau_dir: float, tau_mag: float) -> Rule:
    return lambda rep: diagnose_report(rep, tau_dir, tau_mag).strategy


def _magnitude(rep: Mapping[str, Any], tau_mag: float) -> str:
    """The fallback of the conflict-first families: reweight on imbalance, else nothing."""
    return "reweight" if rep["median_imbalance"] >= tau_mag else "none"


def _cosine(c: float, tau_mag: float) -> Rule:
    def rule(rep: Mapping[str, Any]) -> str:
        if any(
            p["late_conflict_rate"] >= 0.5 and p["late_mean_cosine"] <= -c for p in rep["pairs"]
        ):
            return "adapters"
        return _magnitude(rep, tau_mag)

    return rule


def _update(u: float, tau_mag: float) -> Rule:
    def rule(rep: Mapping[str, Any]) -> str:
        if rep.get("update_conflict_share", 0.0) >= u:
            return "adapters"
        return _magnitude(rep, tau_mag)

    return rule


def _alignment(a: float, tau_mag: float) -> Rule:
    def rule(rep: Mapping[str, Any]) -> str:
        score = rep.get("late_mean_alignment")
        if score is not None and score <= a:
            return "adapters"
        return _magnitude(rep, tau_mag)

    return rule


def _after_reweight(t: float, tau_mag: float) -> Rule:
    def rule(rep: Mapping[str, Any]) -> str:
        after = rep.get("after_reweight")
        if after is None:
            return diagnose_report(rep).strategy
        if max((p["late_conflict_rate"] for p in after["pairs"]), default=0.0) >= t:
            return "adapters"
        return _magnitude(rep, tau_mag)

    return rule


def with_reweighted_probes(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``records`` whose unmodified probe reports (``none``/``auto`` cells) carry
    ``after_reweight``: the probe report of the ``reweight`` cell of the same problem and seed
    (the conflict that remains once the losses are reweighted), where one exists."""
    records = [dict(r) for r in records]
    reweighted = {
        (r["problem"], r["seed"]): r["report"]
        for r in records
        if column(r) == "reweight" and r.get("report")
    }
    for r in records:
        after = reweighted.get((r["problem"], r["seed"]))
        if column(r) in ("none", "auto") and r.get("report") and after is not None:
            r["report"] = {**r["report"], "after_reweight": after}
    return records


def _remap(directional: str, magnitude: str, low: str) -> Rule:
    table = {"directional": directional, "magnitude": magnitude, "low": low}
    return lambda rep: table[_regime(rep)]


def _k2(otherwise: str) -> Rule:
    def rule(rep: Mapping[str, Any]) -> str:
        regime = _regime(rep)
        if regime == "directional":
            return "adapters" if len(rep["loss_names"]) == 2 else otherwise
        return {"magnitude": "reweight", "low": "none"}[regime]

    return rule


def families() -> dict[str, list[tuple[str, Rule]]]:
    """Grid points of every family, the default-like point first."""
    steps = [round(0.1 * i, 1) for i in range(10)]
    return {
        "design": [
            (f"tau_dir={d}, tau_mag={m}", _design(d, m)) for d in TAU_DIRS for m in TAU_MAGS
        ],
        "cosine": [(f"c={c}, tau_mag={m}", _cosine(c, m)) for c in steps for m in TAU_MAGS],
        "update": [
            (f"u={u}, tau_mag={m}", _update(u, m)) for u in (0.5, *steps[1:]) for m in TAU_MAGS
        ],
        "remap": [
            (f"directional->{d}, magnitude->{m}, low->{lo}", _remap(d, m, lo))
            for d, m, lo in itertools.product(
                ("adapters", *COMPARED[:2]), ("reweight", "none", "adapters"), COMPARED
            )
        ],
        "k2": [(f"K>2 directional->{o}", _k2(o)) for o in ("reweight", "none")],
        "alignment": [
            (f"a={a}, tau_mag={m}", _alignment(a, m))
            for a in (0.0, -0.4, -0.2, -0.1, 0.1, 0.2, 0.4, 0.6)
            for m in TAU_MAGS
        ],
        "after-reweight": [
            (f"t={t}, tau_mag={m}", _after_reweight(t, m))
            for t in (0.5, *steps[1:])
            for m in TAU_MAGS
        ],
    }


def regret(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """Geometric mean over ``selection_accuracy`` rows of (the pick's median / the best's)."""
    ratios = [r["medians"][r["pick"]] / max(r["medians"][r["best"]], 1e-300) for r in rows]
    return math.exp(statistics.fmean(math.log(max(x, 1e-300)) for x in ratios)) if ratios else None


def chosen_rule(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The rule chosen across families on the calibration half: accuracy, then regret, then
    family order (see the module docstring)."""
    ranked = [
        (i, r)
        for i, r in enumerate(rows)
        if r["calibration"] is not None and not r["family"].startswith("always")
    ]
    if not ranked:
        return None
    return min(ranked, key=lambda ir: (-ir[1]["calibration"], ir[1]["calibration_regret"], ir[0]))[
        1
    ]


def evaluate(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per family: the chosen grid point and its calibration / held-out accuracies and
    regrets."""
    records = with_reweighted_probes(records)
    configs = [r["config"] for r in selection_accuracy(records)["rows"]]
    calib, held = split_configs(configs)
    rows = []
    for family, grid in families().items():
        best = None
        for label, rule in grid:
            acc = selection_accuracy(records, configs=calib, rule=rule)["accuracy"]
            if best is None or acc > best[0]:
                best = (acc, label, rule)
        acc, label, rule = best
        calib_rows = selection_accuracy(records, configs=calib, rule=rule)
        held_rows = selection_accuracy(records, configs=held, rule=rule)
        rows.append(
            {
                "family": family,
                "chosen": label,
                "calibration": acc,
                "calibration_regret": regret(calib_rows["rows"]),
                "held_out": held_rows["accuracy"],
                "held_out_regret": regret(held_rows["rows"]),
                "held_out_misses": [r["config"] for r in held_rows["rows"] if not r["hit"]],
            }
        )
    for name in COMPARED:

        def always(rep: Mapping[str, Any], name: str = name) -> str:
            return name

        calib_rows = selection_accuracy(records, configs=calib, rule=always)
        held_rows = selection_accuracy(records, configs=held, rule=always)
        rows.append(
            {
                "family": f"always {name}",
                "chosen": "—",
                "calibration": calib_rows["accuracy"],
                "calibration_regret": regret(calib_rows["rows"]),
                "held_out": held_rows["accuracy"],
                "held_out_regret": regret(held_rows["rows"]),
                "held_out_misses": [r["config"] for r in held_rows["rows"] if not r["hit"]],
            }
        )
    return rows


def main(argv: list[str]) -> None:
    if not argv:
        print(__doc__)
        return
    records = current_records([r for path in argv for r in load_results(path)])
    rows = evaluate(records)
    print(
        "| rule family | chosen on the calibration half | calibration | calibration regret "
        "| held-out | held-out regret | held-out misses |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        cal, held = ("n/a" if r[k] is None else f"{r[k]:.0%}" for k in ("calibration", "held_out"))
        cal_r, held_r = (
            "n/a" if r[k] is None else f"{r[k]:.3g}"
            for k in ("calibration_regret", "held_out_regret")
        )
        misses = ", ".join(r["held_out_misses"]) or "—"
        print(f"| {r['family']} | {r['chosen']} | {cal} | {cal_r} | {held} | {held_r} | {misses} |")
    winner = chosen_rule(rows)
    if winner is not None:
        print(
            f"\nChosen across families on the calibration half: {winner['family']} "
            f"({winner['chosen']}), calibration {winner['calibration']:.0%} "
            f"(regret {winner['calibration_regret']:.3g}); held-out "
            + ("n/a" if winner["held_out"] is None else f"{winner['held_out']:.0%}")
        )


if __name__ == "__main__":
    main(sys.argv[1:])
