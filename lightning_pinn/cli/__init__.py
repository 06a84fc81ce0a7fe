"""``lightning-pinn``: run a problem, list problems, report a run, benchmark, fit from YAML."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _points(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in text.split(","):
        name, sep, n = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=COUNT[,NAME=COUNT], got {text!r}")
        out[name.strip()] = _positive_int(n)
    return out


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _interventions(text: str) -> dict[str, str]:
    from lightning_pinn.diagnostics import resolve_interventions

    mapping: dict[str, str] = {}
    for item in text.split(","):
        regime, sep, strategy = item.partition("=")
        if not sep or not regime.strip() or not strategy.strip():
            raise argparse.ArgumentTypeError(
                f"expected REGIME=STRATEGY[,REGIME=STRATEGY...], got {text!r}"
            )
        mapping[regime.strip()] = strategy.strip()
    try:
        resolve_interventions(mapping)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return mapping


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="probe, diagnose, switch and train one problem",
        description="Train a registered problem. By default (--strategy auto) the first "
        "--probe-steps steps run unmodified, the conflict report picks the intervention and "
        "the module switches to it in place.",
    )
    p.add_argument("problem", help="problem name (see `lightning-pinn list`)")
    p.add_argument("--max-steps", type=_positive_int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--strategy", choices=["auto", "none", "reweight", "adapters", "surgery"], default="auto"
    )
    p.add_argument(
        "--probe-steps",
        type=_positive_int,
        default=None,
        help="probe window (default: min(1000, max-steps / 2))",
    )
    p.add_argument("--no-switch", action="store_true", help="diagnose only, never switch")
    p.add_argument(
        "--tau-dir",
        type=float,
        default=0.5,
        help="late conflict rate from which a conflicting pair is persistent (DESIGN §3)",
    )
    p.add_argument(
        "--tau-mag",
        type=float,
        default=1.0,
        help="median imbalance (decades) from which the regime is magnitude (DESIGN §3)",
    )
    p.add_argument(
        "--interventions",
        type=_interventions,
        default=None,
        metavar="REGIME=STRATEGY,...",
        help="override the regime -> intervention map, e.g. directional=reweight "
        "(default: directional=adapters, magnitude=reweight, low=none)",
    )
    p.add_argument("--lr", type=_positive_float, default=1e-3)
    p.add_argument("--lr-decay-rate", type=_positive_float, default=1.0)
    p.add_argument("--lr-decay-steps", type=_positive_int, default=1000)
    p.add_argument(
        "--points",
        type=_points,
        default=None,
        help="point counts per set, e.g. residual=500,initial=100",
    )
    p.add_argument(
        "--problem-options",
        type=_json_dict,
        default={},
        help="problem parameters as JSON, e.g. '{\"beta\": 10}'",
    )
    p.add_argument(
        "--module-options",
        type=_json_dict,
        default={},
        help='PINNModule options as JSON, e.g. \'{"rank": 8, "routing": "shared"}\'',
    )
    # Common strategy options as plain flags (what a W&B sweep passes as --key=value); they
    # override the same keys of --module-options.
    p.add_argument(
        "--reweighting", default=None, help="reweighting rule: gradnorm, lra, relobralo or fixed"
    )
    p.add_argument("--rank", type=_positive_int, default=None, help="adapter rank r")
    p.add_argument(
        "--alpha",
        type=_positive_float,
        default=None,
        help="adapter scaling numerator (scaling = alpha / rank)",
    )
    p.add_argument(
        "--routing",
        choices=["own", "shared"],
        default=None,
        help="adapter routing (own: adapter k moves on loss k only)",
    )
    p.add_argument(
        "--aggregator", default=None, help="surgery aggregator, e.g. upgrad, pcgrad, config, mgda"
    )
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="1")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--logger", choices=["csv", "tensorboard", "wandb", "none"], default="csv")
    p.add_argument("--out", default="runs", help="root directory of logs and checkpoints")
    p.add_argument("--name", default=None, help="run name (default: the problem name)")
    p.add_argument("--log-every", type=_positive_int, default=50)
    p.add_argument("--val-every", type=_positive_int, default=None)
    p.add_argument("--resume", default=None, metavar="PATH", help="resume from a checkpoint")
    p.add_argument("--no-progress-bar", action="store_true")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _run(args: argparse.Namespace) -> int:
    from lightning_pinn import problems
    from lightning_pinn.experiment import RunConfig, format_summary, run_experiment

    if args.problem not in problems.names():
        problems.get(args.problem)  # raises with close matches
    devices: int | str = int(args.devices) if args.devices.isdigit() else args.devices
    module_options = dict(args.module_options)
    for key in _STRATEGY_FLAGS:
        if getattr(args, key) is not None:
            module_options[key] = getattr(args, key)
    cfg = RunConfig(
        problem=args.problem,
        max_steps=args.max_steps,
        seed=args.seed,
        strategy=args.strategy,
        probe_steps=args.probe_steps,
        switch=not args.no_switch,
        tau_dir=args.tau_dir,
        tau_mag=args.tau_mag,
        interventions=args.interventions,
        lr=args.lr,
        lr_decay_rate=args.lr_decay_rate,
        lr_decay_steps=args.lr_decay_steps,
        points=args.points,
        problem_options=args.problem_options,
        module_options=module_options,
        accelerator=args.accelerator,
        devices=devices,
        precision=args.precision,
        logger=args.logger,
        out=args.out,
        name=args.name,
        log_every_n_steps=args.log_every,
        val_every=args.val_every,
        resume=args.resume,
        progress_bar=not args.no_progress_bar,
    )
    summary = run_experiment(cfg)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


_STRATEGY_FLAGS = ("reweighting", "rank", "alpha", "routing", "aggregator")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="re-print a finished run's summary and conflict report",
        description="Read RUN_DIR/summary.json (written by `lightning-pinn run`) and the "
        "conflict report next to it, and print them.",
    )
    p.add_argument("run_dir", help="a run's log directory (the `logs:` line of `run`)")
    p.add_argument("--json", action="store_true", help="print summary.json as is")


def _report(args: argparse.Namespace) -> int:
    from lightning_pinn.experiment import format_summary

    run_dir = Path(args.run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; pass the log directory printed by `lightning-pinn run` "
            "(the `logs:` line)"
        )
    summary = json.loads(path.read_text())
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(format_summary(summary))
    report = summary.get("conflict_report")
    report_path = Path(report) if report else run_dir / "conflict_report.md"
    if report_path.is_file():
        print()
        print(report_path.read_text().rstrip())
    for key in ("prediction_figure", "error_field"):
        if summary.get(key):
            print(f"{key.replace('_', ' ')}: {summary[key]}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from lightning_pinn import problems

    for name in problems.names():
        p = problems.get(name)
        doc = (type(p).__doc__ or "").strip().splitlines()[0]
        print(f"{name:24s} K={len(p.loss_names)}  d={p.input_dim}  m={p.output_dim}  {doc}")
    return 0


def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="problems x strategies x seeds: the regime map (resumable)",
        description="Run every (problem, strategy, seed) cell not yet in OUT/results.jsonl, "
        "then write OUT/table.md, OUT/selection.json and OUT/regime_map.png.",
    )
    p.add_argument("--suite", choices=["quick", "full"], default="quick")
    p.add_argument("--problems", nargs="+", default=None, help="override the suite's problems")
    p.add_argument("--strategies", nargs="+", default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=None)
    p.add_argument("--steps", type=_positive_int, default=None)
    p.add_argument("--probe-steps", type=_positive_int, default=None)
    p.add_argument(
        "--module-options",
        type=_json_dict,
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
    p.add_argument("--lr-decay-steps", type=_positive_int, default=None)
    p.add_argument(
        "--val-every",
        type=_positive_int,
        default=None,
        help="validate every N steps (default: once, at the end); the records' val_curve "
        "then gives the rel L2 at every shorter budget",
    )
    p.add_argument("--points", type=_points, default=None)
    p.add_argument("--jobs", type=_positive_int, default=None)
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads per process (default: cores / jobs)",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="run only cells i, i+N, i+2N, ... (0-based): one shard per machine",
    )
    p.add_argument("--out", default="benchmarks/results/quick")
    p.add_argument("--analyze-only", action="store_true", help="only re-write the outputs")


def _benchmark(args: argparse.Namespace) -> int:
    from lightning_pinn import benchmark

    settings = benchmark.suite(args.suite)
    if not args.analyze_only:
        cells = benchmark.make_cells(
            args.problems or settings["problems"],
            args.strategies or settings["strategies"],
            args.seeds if args.seeds is not None else settings["seeds"],
            args.steps or settings["steps"],
            args.probe_steps or min(settings["probe_steps"], args.steps or settings["steps"]),
            args.module_options,
            {
                name: value
                for name in benchmark.RUN_OPTIONS
                if (value := getattr(args, name)) is not None
            },
        )
        if args.shard is not None:
            index, count = args.shard
            cells = cells[index::count]
        benchmark.run_benchmark(
            cells, args.out, jobs=args.jobs, points=args.points, threads=args.threads
        )
    result = benchmark.analyze(args.out)
    acc = result["selection"]["accuracy"]
    print((Path(args.out) / "table.md").read_text())
    print(f"selection accuracy: {'n/a' if acc is None else f'{acc:.0%}'}")
    for name, value in result["selection"]["constant_pick_accuracy"].items():
        print(f"  always {name}: {value:.0%}")
    auto = result["selection"]["auto_run_accuracy"]
    if auto is not None:
        print(f"auto runs within 1.25x of the best fixed strategy: {auto:.0%}")
    cal = result["calibration"]
    if cal.get("tau_dir") is not None:
        print(
            f"calibrated tau_dir={cal['tau_dir']}, tau_mag={cal['tau_mag']}: calibration half "
            f"{cal['calibration_accuracy']:.0%}, held-out half {cal['held_out_accuracy']:.0%} "
            f"(defaults {cal['held_out_accuracy_defaults']:.0%})"
        )
    print(f"outputs in {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-pinn",
        description="Physics-informed neural networks that diagnose gradient conflict.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    sub.add_parser("list", help="list the registered problems")
    _add_report(sub)
    _add_benchmark(sub)
    sub.add_parser("fit", help="train from a LightningCLI YAML config (fit --config FILE)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-pinn`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "fit":
        from lightning_pinn.lightning_cli import fit_main

        try:
            fit_main(argv[1:])
        except (ValueError, TypeError) as err:  # bad problem name/options: one line, exit 2
            print(f"lightning-pinn fit: error: {err}", file=sys.stderr)
            return 2
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"run": _run, "list": _list, "benchmark": _benchmark, "report": _report}
    try:
        return handlers[args.command](args)
    except (ValueError, TypeError, ImportError, FileNotFoundError) as err:
        print(f"lightning-pinn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
