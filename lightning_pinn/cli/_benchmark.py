"""``lightning-pinn benchmark``: problems × strategies × seeds, resumable, then the analysis."""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning_pinn import benchmark
from lightning_pinn.cli._flags import argparse_type
from lightning_pinn.diagnostics import RULES
from lightning_pinn.run._parsers import (
    json_object,
    non_negative_float,
    parse_points,
    positive_int,
    seed_int,
)

__all__ = ["add_benchmark"]


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ValueError(f"expected I/N such as 0/4, got {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise ValueError(f"expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def add_benchmark(sub: argparse._SubParsersAction) -> None:
    """The ``benchmark`` subcommand (``docs/cli.md``)."""
    count = argparse_type(positive_int)
    p = sub.add_parser(
        "benchmark",
        help="problems x strategies x seeds: the regime map (resumable)",
        description="Run every (problem, strategy, seed) cell not yet in OUT/results.jsonl, "
        "then write OUT/table.md, OUT/selection.json and OUT/regime_map.png. See docs/cli.md "
        "and docs/results.md.",
    )
    p.add_argument(
        "--suite",
        choices=["quick", "full"],
        default="quick",
        help="quick: 4 problems, 1 seed, 1000 steps; full: every problem, 3 seeds, 5000 steps",
    )
    p.add_argument("--problems", nargs="+", default=None, help="override the suite's problems")
    p.add_argument(
        "--strategies",
        nargs="+",
        default=None,
        help=f"override the suite's strategies ({', '.join(benchmark.ALL_STRATEGIES)})",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=argparse_type(seed_int),
        default=None,
        help="override the suite's seeds",
    )
    p.add_argument(
        "--steps",
        type=count,
        default=None,
        help="override the suite's steps per cell (with --recipe: each problem's recipe's)",
    )
    p.add_argument(
        "--recipe",
        default=None,
        metavar="NAME|PATH",
        help="train every cell with a recipe (examples/recipes/): 'default' is each problem's "
        "own, or a recipe name or YAML path; the cell's strategy, steps and probe override it "
        "(default: the suite's plain set-up)",
    )
    p.add_argument(
        "--probe-steps", type=count, default=None, help="override the suite's probe window"
    )
    p.add_argument(
        "--module-options",
        type=argparse_type(json_object),
        default={},
        help="PINNModule options for every cell (an ablation), as JSON",
    )
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    p.add_argument(
        "--lr-decay-rate",
        type=float,
        default=None,
        help="step decay: multiply the lr by this every --lr-decay-steps steps",
    )
    p.add_argument("--lr-decay-steps", type=count, default=None, help="step-decay interval")
    p.add_argument(
        "--trial-steps",
        type=count,
        default=None,
        help="auto-guarded cells: steps per trial (default: "
        f"{benchmark.GUARDED_TRIAL_FRACTION:g} x the cell's steps)",
    )
    p.add_argument(
        "--trial-score",
        choices=["geomean", "sum", "residual"],
        default=None,
        help="auto-guarded cells: the trial score (default: geomean)",
    )
    p.add_argument(
        "--trial-margin",
        type=argparse_type(non_negative_float),
        default=None,
        help="auto-guarded cells: keep the diagnosis's first choice unless another "
        "candidate's trial score times (1 + margin) is below its own (default: 0, the best "
        "score wins)",
    )
    p.add_argument(
        "--regime-rule",
        choices=list(RULES),
        default=None,
        help="auto cells (auto, auto-guarded, auto-escalate): the regime rule's named "
        f"thresholds (default: {benchmark.CELL_RULE}, the rule the recorded cells ran under)",
    )
    p.add_argument(
        "--reprobe-every",
        type=count,
        default=None,
        help="auto cells (auto, auto-guarded, auto-escalate): re-probe every N steps after "
        "the switch and step back when the regime has gone (joins their keys; default: no "
        "re-probing)",
    )
    p.add_argument(
        "--val-every",
        type=count,
        default=None,
        help="validate every N steps (default: once, at the end); the records' val_curve "
        "then gives the rel L2 at every shorter budget",
    )
    p.add_argument(
        "--points",
        type=argparse_type(parse_points),
        default=None,
        metavar="NAME=COUNT,...",
        help="point counts per set for every cell (default: each problem's)",
    )
    p.add_argument(
        "--jobs", type=count, default=None, help="parallel processes (default: cores / 2)"
    )
    p.add_argument(
        "--threads",
        type=count,
        default=None,
        help="torch threads per process (default: 1 with several jobs, else run's default: "
        "$OMP_NUM_THREADS or min(cores, 4))",
    )
    p.add_argument(
        "--shard",
        type=argparse_type(_shard),
        default=None,
        metavar="I/N",
        help="run only cells i, i+N, i+2N, ... (0-based): one shard per machine",
    )
    p.add_argument(
        "--out",
        default="benchmarks/results/quick",
        help="output directory (results.jsonl, table.md, selection.json, regime_map.png)",
    )
    p.add_argument("--analyze-only", action="store_true", help="only re-write the outputs")
    p.set_defaults(handler=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    settings = benchmark.suite(args.suite)
    if not args.analyze_only:
        if args.recipe is None:
            steps = args.steps or settings["steps"]
            probe = args.probe_steps or min(settings["probe_steps"], steps)
        else:  # the recipe's steps and run's default probe unless given
            steps, probe = args.steps, args.probe_steps
        cells = benchmark.make_cells(
            args.problems or settings["problems"],
            args.strategies or settings["strategies"],
            args.seeds if args.seeds is not None else settings["seeds"],
            steps,
            probe,
            args.module_options,
            {
                name: value
                for name in benchmark.RUN_OPTIONS
                if (value := getattr(args, name)) is not None
            },
            recipe=args.recipe,
        )
        if args.shard is not None:
            index, count = args.shard
            cells = cells[index::count]
        benchmark.run_benchmark(
            cells, args.out, jobs=args.jobs, points=args.points, threads=args.threads
        )
    result = benchmark.analyze(args.out)
    _print_result(result, Path(args.out))
    return 0


def _pct(value: float | None) -> str:
    """A share as a percentage; ``n/a`` where nothing was there to count (e.g. a held-out half
    with no finished configuration yet)."""
    return "n/a" if value is None else f"{value:.0%}"


def _print_result(result: dict, out: Path) -> None:
    acc = result["selection"]["accuracy"]
    print((out / "table.md").read_text())
    print(f"selection accuracy: {'n/a' if acc is None else f'{acc:.0%}'}")
    for name, value in result["selection"]["constant_pick_accuracy"].items():
        print(f"  always {name}: {value:.0%}")
    auto = result["selection"]["auto_run_accuracy"]
    if auto is not None:
        print(f"auto runs within 1.25x of the best fixed strategy: {auto:.0%}")
    guarded = result["selection"]["guarded_run_accuracy"]
    if guarded is not None:
        print(
            f"auto-guarded runs within 1.25x of the best fixed strategy: {_pct(guarded)}; "
            f"within 1.25x of none: {_pct(result['selection']['guarded_within_none'])}"
        )
    escalated = result["selection"].get("escalated_run_accuracy")
    if escalated is not None:
        print(f"auto-escalate runs within 1.25x of the best fixed strategy: {escalated:.0%}")
    geomean = result["selection"]["geomean_rel_l2"]
    if geomean:
        print("geometric-mean rel L2: " + ", ".join(f"{s} {v:.3g}" for s, v in geomean.items()))
    cal = result["calibration"]
    if cal.get("tau_dir") is not None:
        print(
            f"calibrated tau_dir={cal['tau_dir']}, tau_mag={cal['tau_mag']}: calibration half "
            f"{_pct(cal['calibration_accuracy'])}, held-out half "
            f"{_pct(cal['held_out_accuracy'])} (defaults {_pct(cal['held_out_accuracy_defaults'])})"
        )
    print(f"outputs in {out}")
