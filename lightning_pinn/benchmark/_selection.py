"""Selection analysis of benchmark records: best strategy in hindsight, the diagnosis's pick,
selection accuracy, and the threshold calibration on a fixed calibration half.

The diagnosis rule and its thresholds are explained in ``docs/concepts.md`` ("The probe and
the three regimes"); ``docs/results.md`` reports what this analysis found.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lightning_pinn import problems
from lightning_pinn.benchmark._cells import ESCALATED, GUARDED, column
from lightning_pinn.diagnostics import (
    DEFAULT_INTERVENTIONS,
    DEFAULT_TAU_COS,
    DEFAULT_TAU_DIR,
    DEFAULT_TAU_MAG,
    Diagnosis,
    classify_regime,
)
from lightning_pinn.strategies import strategy_names

__all__ = [
    "COMPARED",
    "TOLERANCE",
    "by_config",
    "calibrate",
    "diagnose_report",
    "median_rel_l2",
    "probe_reports",
    "selection_accuracy",
    "split_configs",
]

COMPARED: tuple[str, ...] = tuple(
    name for name in strategy_names() if name in DEFAULT_INTERVENTIONS.values()
)
"""The strategies ``auto`` chooses between by default, in registry order (ties go to the
first)."""
TOLERANCE = 1.25


def by_config(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[dict]]]:
    """Records grouped by configuration (the problem), then by :func:`column` (the strategy,
    and the mode-only run options of a variant such as ``auto[reprobe_every=500]``)."""
    table: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        table[r["problem"]][column(r)].append(dict(r))
    return table


def median_rel_l2(records: Sequence[Mapping[str, Any]]) -> float:
    """Median final rel L2 over ``records`` (the seeds of one cell)."""
    return statistics.median(r["rel_l2"] for r in records)


def diagnose_report(
    report: Mapping[str, Any],
    tau_dir: float = DEFAULT_TAU_DIR,
    tau_mag: float = DEFAULT_TAU_MAG,
    tau_cos: float = DEFAULT_TAU_COS,
) -> Diagnosis:
    """The diagnosis of a stored probe report under other thresholds.

    Args:
        report: a ``ConflictReport.to_dict()`` (the ``report`` of a benchmark record).
        tau_dir: late conflict rate from which a conflicting pair is persistent.
        tau_mag: median imbalance (decades) from which the regime is magnitude.
        tau_cos: cosine margin of the directional regime (late mean cosine below
            ``-tau_cos``).

    Returns:
        The :class:`~lightning_pinn.diagnostics.Diagnosis` (regime and intervention), by the
        rule of ``docs/concepts.md``.
    """
    return classify_regime(
        [p["late_conflict_rate"] for p in report["pairs"]],
        [p["late_mean_cosine"] for p in report["pairs"]],
        report["median_imbalance"],
        tau_dir=tau_dir,
        tau_mag=tau_mag,
        tau_cos=tau_cos,
    )


def _choice(
    reports: Sequence[Mapping[str, Any]],
    tau_dir: float,
    tau_mag: float,
    rule: Callable[[Mapping[str, Any]], str] | None = None,
) -> str:
    """Majority intervention over seeds of the probe reports, under given thresholds or a
    custom ``rule`` (probe report -> intervention)."""
    votes = Counter(
        rule(rep) if rule is not None else diagnose_report(rep, tau_dir, tau_mag).strategy
        for rep in reports
    )
    return sorted(votes.items(), key=lambda kv: (-kv[1], COMPARED.index(kv[0])))[0][0]


def probe_reports(by_strategy: Mapping[str, list[dict]]) -> list[dict]:
    """Reports of unmodified probe windows: the `none` cells (else `auto`, same window)."""
    for name in ("none", "auto"):
        reps = [r["report"] for r in by_strategy.get(name, []) if r.get("report")]
        if reps:
            return reps
    return []


def selection_accuracy(
    records: Sequence[Mapping[str, Any]],
    tau_dir: float = DEFAULT_TAU_DIR,
    tau_mag: float = DEFAULT_TAU_MAG,
    configs: Sequence[str] | None = None,
    rule: Callable[[Mapping[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Best strategy in hindsight per configuration and whether the diagnosis picked one
    within 1.25× of it.

    ``rule``, when given, replaces the default rule (``docs/concepts.md``): a function of one
    probe report (the ``ConflictReport.to_dict()`` of a record) returning ``"none"``,
    ``"reweight"`` or ``"adapters"`` — how alternative rules are scored on the same records.

    Best = lowest median rel L2 over seeds among ``none``, ``reweight``, ``adapters``; the
    diagnosis's pick = the majority intervention of the configuration's unmodified probe
    reports under ``(tau_dir, tau_mag)``; a hit when the pick's median rel L2 is at most
    1.25 × the best's.

    Returns:
        ``{"accuracy": fraction or None, "rows": [per-configuration dicts],
        "constant_pick_accuracy": {strategy: fraction}}`` — the last is the accuracy of always
        picking the same strategy, the baseline the diagnosis must beat; and
        ``"auto_run_accuracy"``: the share of configurations whose ``auto`` runs (probe, then
        switch in the same run) reach a median within 1.25× of the best fixed strategy;
        ``"guarded_run_accuracy"``: the same for ``auto-guarded`` runs
        (``"escalated_run_accuracy"``: for ``auto-escalate`` runs); ``"guarded_within_none"``:
        the share of configurations whose ``auto-guarded`` median is at most 1.25× ``none``'s;
        ``"geomean_rel_l2"``: per strategy, the geometric mean over the configurations of the
        median rel L2 (strategies that ran on every configuration).
    """
    table = by_config(records)
    rows = []
    for config in sorted(configs if configs is not None else table):
        by_strategy = table.get(config, {})
        medians = {s: median_rel_l2(by_strategy[s]) for s in COMPARED if by_strategy.get(s)}
        reports = probe_reports(by_strategy)
        if len(medians) < len(COMPARED) or not reports:
            continue
        best = min(medians, key=lambda s: (medians[s], COMPARED.index(s)))
        pick = _choice(reports, tau_dir, tau_mag, rule)
        rows.append(
            {
                "config": config,
                "medians": medians,
                "best": best,
                "pick": pick,
                "hit": medians[pick] <= TOLERANCE * medians[best],
                "late_conflict_rate": max(
                    (p["late_conflict_rate"] for p in reports[0]["pairs"]), default=0.0
                ),
                "median_imbalance": statistics.median(r["median_imbalance"] for r in reports),
                "regime": Counter(r["regime"] for r in reports).most_common(1)[0][0],
                "auto_median": median_rel_l2(by_strategy["auto"])
                if by_strategy.get("auto")
                else None,
                "guarded_median": median_rel_l2(by_strategy[GUARDED])
                if by_strategy.get(GUARDED)
                else None,
                "escalated_median": median_rel_l2(by_strategy[ESCALATED])
                if by_strategy.get(ESCALATED)
                else None,
                "all_medians": {s: median_rel_l2(v) for s, v in by_strategy.items() if v},
            }
        )
    accuracy = sum(r["hit"] for r in rows) / len(rows) if rows else None
    # The `auto` runs themselves (probe, then switch mid-run; guarded: trials decide) against
    # the same best, and the guarded runs against `none`.
    run_accuracy, runs = {}, {}
    for name, field in (
        ("auto", "auto_median"),
        ("guarded", "guarded_median"),
        ("escalated", "escalated_median"),
    ):
        runs[name] = [r for r in rows if r[field] is not None]
        for r in runs[name]:
            r[f"{name}_hit"] = r[field] <= TOLERANCE * r["medians"][r["best"]]
        hits = [r[f"{name}_hit"] for r in runs[name]]
        run_accuracy[name] = sum(hits) / len(hits) if hits else None
    guarded = runs["guarded"]
    guarded_vs_none = (
        sum(r["guarded_median"] <= TOLERANCE * r["medians"]["none"] for r in guarded) / len(guarded)
        if guarded
        else None
    )
    # Geometric-mean error over the configurations where every strategy ran.
    shared = set.intersection(*(set(r["all_medians"]) for r in rows)) if rows else set()
    geomean = {
        s: math.exp(statistics.fmean(math.log(max(r["all_medians"][s], 1e-300)) for r in rows))
        for s in sorted(shared)
    }
    # Reference points: a picker that always answers the same strategy.
    constant = (
        {
            s: sum(r["medians"][s] <= TOLERANCE * r["medians"][r["best"]] for r in rows) / len(rows)
            for s in COMPARED
        }
        if rows
        else {}
    )
    return {
        "accuracy": accuracy,
        "rows": rows,
        "constant_pick_accuracy": constant,
        "auto_run_accuracy": run_accuracy["auto"],
        "guarded_run_accuracy": run_accuracy["guarded"],
        "escalated_run_accuracy": run_accuracy["escalated"],
        "guarded_within_none": guarded_vs_none,
        "geomean_rel_l2": geomean,
    }


def split_configs(configs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Deterministic calibration / held-out halves: alternate over sorted names.

    The built-in configurations (:func:`problems.builtin_names`) take their half from one fixed
    alternation over all built-in names, so a configuration's half never moves when results
    for other configurations are added, or when a user registers problems of their own (a
    held-out configuration stays held out). Any other names alternate among themselves,
    sorted, after that. A registered alias of another configuration (:func:`problems.aliases`,
    e.g. ``poisson_nd`` = ``poisson_nd-d5``) is in neither half, so no configuration counts
    twice; the alternation still steps over it, so no other name changes half.
    """
    builtin = problems.builtin_names()
    keep = set(configs) - set(problems.aliases())
    others = sorted(keep - set(builtin))
    return (
        [c for c in builtin[0::2] if c in keep] + others[0::2],
        [c for c in builtin[1::2] if c in keep] + others[1::2],
    )


def calibrate(
    records: Sequence[Mapping[str, Any]],
    tau_dirs: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    tau_mags: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
) -> dict[str, Any]:
    """Choose ``(tau_dir, tau_mag)`` on the calibration half, report on the held-out half.

    Ties on the calibration accuracy go to the thresholds closest to the defaults
    (``DEFAULT_TAU_DIR``, ``DEFAULT_TAU_MAG``).
    """
    configs = [r["config"] for r in selection_accuracy(records)["rows"]]
    calib, held = split_configs(configs)
    best = None
    for td in tau_dirs:
        for tm in tau_mags:
            acc = selection_accuracy(records, td, tm, calib)["accuracy"]
            if acc is None:
                continue
            score = (acc, -abs(td - DEFAULT_TAU_DIR) - abs(tm - DEFAULT_TAU_MAG))
            if best is None or score > best[0]:
                best = (score, td, tm)
    if best is None:
        return {"calibration": calib, "held_out": held, "tau_dir": None, "tau_mag": None}
    _, td, tm = best
    return {
        "calibration": calib,
        "held_out": held,
        "tau_dir": td,
        "tau_mag": tm,
        "calibration_accuracy": selection_accuracy(records, td, tm, calib)["accuracy"],
        "held_out_accuracy": selection_accuracy(records, td, tm, held)["accuracy"],
        "held_out_accuracy_defaults": selection_accuracy(
            records, DEFAULT_TAU_DIR, DEFAULT_TAU_MAG, held
        )["accuracy"],
    }
