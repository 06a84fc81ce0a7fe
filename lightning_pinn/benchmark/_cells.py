"""The regime map: problems × strategies × seeds, selection accuracy and calibration.

Each cell ``(problem, strategy, seed)`` is one independent :func:`run_experiment` call, run in
a pool of processes and appended to ``results.jsonl`` as soon as it finishes; re-running the
same command skips finished cells (resumable). :func:`analyze` turns a results file into the
markdown table, the selection accuracy, the threshold calibration and the regime scatter.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing as mp
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning_pinn import problems
from lightning_pinn.diagnostics import Diagnosis, classify_regime

__all__ = [
    "SUITES",
    "Cell",
    "analyze",
    "calibrate",
    "diagnose_report",
    "load_results",
    "run_benchmark",
    "selection_accuracy",
]

COMPARED = ("none", "reweight", "adapters")  # the strategies `auto` chooses between
ALL_STRATEGIES = ("none", "reweight", "adapters", "surgery", "auto")
TOLERANCE = 1.25


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


SUITES = ("quick", "full")


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
        def pairs(items: tuple[tuple[str, Any], ...]) -> str:
            return ",".join(f"{k}={v}" for k, v in items)

        key = f"{self.problem}|{self.strategy}|{self.seed}|{self.steps}|{self.probe_steps}|"
        key += pairs(self.options)
        if self.run_options:  # appended only when set: older result files keep their keys
            key += "|" + pairs(self.run_options)
        return key


# RunConfig fields a cell may set: the optimiser schedule, and a validation interval (the
# record's `val_curve` then holds the rel L2 at every shorter budget).
RUN_OPTIONS = ("lr", "lr_decay_rate", "lr_decay_steps", "val_every")


def _run_cell(cell: Cell, out: str, threads: int, points: dict[str, int] | None) -> dict:
    import logging

    import torch

    from lightning_pinn.experiment import RunConfig, run_experiment

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
    """The cells of a benchmark, validated (unknown problems, strategies or options raise).

    ``options`` are PINNModule options (an ablation of the method); ``run_options`` set the
    optimiser schedule of every cell (``lr``, ``lr_decay_rate``, ``lr_decay_steps``).
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
        threads: torch threads per process (default: the cores divided among the jobs).

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
    threads = threads or max(1, cores // jobs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

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


def _append(sink: Any, record: dict, bar: Any) -> None:
    sink.write(json.dumps(record) + "\n")
    sink.flush()
    if bar is not None:
        bar.update(1)


# ----------------------------------------------------------------------------- analysis
def _config(record: Mapping[str, Any]) -> str:
    return record["problem"]


def _by_config(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[dict]]]:
    table: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        table[_config(r)][r["strategy"]].append(dict(r))
    return table


def _median_rel_l2(records: Sequence[Mapping[str, Any]]) -> float:
    return statistics.median(r["rel_l2"] for r in records)


def diagnose_report(
    report: Mapping[str, Any], tau_dir: float = 0.5, tau_mag: float = 1.0
) -> Diagnosis:
    """The DESIGN §3 diagnosis of a stored probe report (``ConflictReport.to_dict()``) under
    other thresholds."""
    return classify_regime(
        [p["late_conflict_rate"] for p in report["pairs"]],
        [p["late_mean_cosine"] for p in report["pairs"]],
        report["median_imbalance"],
        tau_dir=tau_dir,
        tau_mag=tau_mag,
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


def _probe_reports(by_strategy: Mapping[str, list[dict]]) -> list[dict]:
    """Reports of unmodified probe windows: the `none` cells (else `auto`, same window)."""
    for name in ("none", "auto"):
        reps = [r["report"] for r in by_strategy.get(name, []) if r.get("report")]
        if reps:
            return reps
    return []


def selection_accuracy(
    records: Sequence[Mapping[str, Any]],
    tau_dir: float = 0.5,
    tau_mag: float = 1.0,
    configs: Sequence[str] | None = None,
    rule: Callable[[Mapping[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Best strategy in hindsight per configuration and whether the diagnosis picked one
    within 1.25× of it.

    ``rule``, when given, replaces the DESIGN §3 rule: a function of one probe report (the
    ``ConflictReport.to_dict()`` of a record) returning ``"none"``, ``"reweight"`` or
    ``"adapters"`` — how alternative rules are scored on the same records.

    Best = lowest median rel L2 over seeds among ``none``, ``reweight``, ``adapters``; the
    diagnosis's pick = the majority intervention of the configuration's unmodified probe
    reports under ``(tau_dir, tau_mag)``; a hit when the pick's median rel L2 is at most
    1.25 × the best's.

    Returns:
        ``{"accuracy": fraction or None, "rows": [per-configuration dicts],
        "constant_pick_accuracy": {strategy: fraction}}`` — the last is the accuracy of always
        picking the same strategy, the baseline the diagnosis must beat; and
        ``"auto_run_accuracy"``: the share of configurations whose ``auto`` runs (probe, then
        switch in the same run) reach a median within 1.25× of the best fixed strategy.
    """
    table = _by_config(records)
    rows = []
    for config in sorted(configs if configs is not None else table):
        by_strategy = table.get(config, {})
        medians = {s: _median_rel_l2(by_strategy[s]) for s in COMPARED if by_strategy.get(s)}
        reports = _probe_reports(by_strategy)
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
                "auto_median": _median_rel_l2(by_strategy["auto"])
                if by_strategy.get("auto")
                else None,
            }
        )
    accuracy = sum(r["hit"] for r in rows) / len(rows) if rows else None
    # The `auto` runs themselves (probe, then switch mid-run) against the same best.
    autos = [r for r in rows if r["auto_median"] is not None]
    for r in autos:
        r["auto_hit"] = r["auto_median"] <= TOLERANCE * r["medians"][r["best"]]
    auto_accuracy = sum(r["auto_hit"] for r in autos) / len(autos) if autos else None
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
        "auto_run_accuracy": auto_accuracy,
    }


def split_configs(configs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Deterministic calibration / held-out halves: alternate over sorted names.

    When every configuration is a registered problem, the alternation runs over all
    registered names, so a configuration's half never moves when results for other
    configurations are added (a held-out configuration stays held out); otherwise it runs over
    the given names.
    """
    registered = sorted(problems.names())
    present = set(configs)
    ordered = registered if present <= set(registered) else sorted(present)
    return (
        [c for c in ordered[0::2] if c in present],
        [c for c in ordered[1::2] if c in present],
    )


def calibrate(
    records: Sequence[Mapping[str, Any]],
    tau_dirs: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    tau_mags: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
) -> dict[str, Any]:
    """Choose ``(tau_dir, tau_mag)`` on the calibration half, report on the held-out half.

    Ties on the calibration accuracy go to the thresholds closest to the defaults (0.5, 1.0).
    """
    configs = [r["config"] for r in selection_accuracy(records)["rows"]]
    calib, held = split_configs(configs)
    best = None
    for td in tau_dirs:
        for tm in tau_mags:
            acc = selection_accuracy(records, td, tm, calib)["accuracy"]
            if acc is None:
                continue
            score = (acc, -abs(td - 0.5) - abs(tm - 1.0))
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
        "held_out_accuracy_defaults": selection_accuracy(records, 0.5, 1.0, held)["accuracy"],
    }


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def markdown_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Per-configuration table: probe statistics, median rel L2 per strategy, selection."""
    table = _by_config(records)
    strategies = [s for s in ALL_STRATEGIES if any(s in v for v in table.values())]
    sel = {r["config"]: r for r in selection_accuracy(records)["rows"]}
    head = ["config", "K", "regime", "late rate", "imbalance", *strategies, "best", "pick", "hit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for config in sorted(table):
        by_strategy = table[config]
        any_rec = next(iter(by_strategy.values()))[0]
        row = sel.get(config)
        reports = _probe_reports(by_strategy)
        k = len(reports[0]["loss_names"]) if reports else len(any_rec.get("final_losses", {}))
        cells = [
            config,
            str(k),
            row["regime"] if row else (reports[0]["regime"] if reports else "—"),
            _fmt(row["late_conflict_rate"]) if row else "—",
            _fmt(row["median_imbalance"]) if row else "—",
        ]
        for s in strategies:
            cells.append(_fmt(_median_rel_l2(by_strategy[s])) if by_strategy.get(s) else "—")
        cells += [row["best"], row["pick"], "yes" if row["hit"] else "no"] if row else ["—"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_regime_map(records: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Scatter: late conflict rate vs median imbalance, coloured by the winning strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = selection_accuracy(records)["rows"]
    colors = {"none": "tab:gray", "reweight": "tab:blue", "adapters": "tab:red"}
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for s, c in colors.items():
        pts = [r for r in rows if r["best"] == s]
        ax.scatter(
            [r["late_conflict_rate"] for r in pts],
            [r["median_imbalance"] for r in pts],
            c=c,
            label=f"best: {s}",
            edgecolors=["k" if r["hit"] else "none" for r in pts],
        )
        for r in pts:
            ax.annotate(r["config"], (r["late_conflict_rate"], r["median_imbalance"]), fontsize=7)
    ax.axvline(0.5, ls="--", c="k", lw=0.8)
    ax.axhline(1.0, ls=":", c="k", lw=0.8)
    ax.set_xlabel("max late-half conflict rate over pairs")
    ax.set_ylabel("median imbalance (decades)")
    ax.set_title("Regime map (black edge: diagnosis within 1.25× of best)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def analyze(out: str | Path) -> dict[str, Any]:
    """Write ``table.md``, ``selection.json`` and ``regime_map.png`` for ``out/results.jsonl``."""
    out = Path(out)
    records = load_results(out / "results.jsonl")
    if not records:
        raise ValueError(f"no results in {out / 'results.jsonl'}; run the benchmark first")
    selection = selection_accuracy(records)
    calibration = calibrate(records)
    (out / "table.md").write_text(markdown_table(records) + "\n")
    (out / "selection.json").write_text(
        json.dumps({"selection": selection, "calibration": calibration}, indent=2)
    )
    plot_regime_map(records, out / "regime_map.png")
    return {"selection": selection, "calibration": calibration}


def suite(name: str) -> dict[str, Any]:
    """The settings of a named suite (``quick`` or ``full``)."""
    suites = _suites()
    if name not in suites:
        raise ValueError(f"unknown suite {name!r}; valid: {', '.join(suites)}")
    return suites[name]
