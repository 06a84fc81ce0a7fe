"""``lightning-pinn run``, ``report`` and ``list``: one problem's run, a finished run's summary,
the registered problems."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lightning_pinn import problems, run
from lightning_pinn.cli._flags import add_dataclass_flags, config_from_args, given_fields
from lightning_pinn.run import RunConfig, StrategyFlags, format_summary
from lightning_pinn.run._recipes import apply_recipe, load_recipe
from lightning_pinn.run._threads import default_threads, oversubscription

__all__ = ["add_list", "add_report", "add_run"]


def add_run(sub: argparse._SubParsersAction) -> None:
    """The ``run`` subcommand: one flag per :class:`RunConfig` and :class:`StrategyFlags`
    field, plus ``--json``."""
    p = sub.add_parser(
        "run",
        help="probe, diagnose, switch and train one problem",
        description="Train a registered problem. By default (--strategy auto) the first "
        "--probe-steps steps run unmodified, the conflict report picks the intervention and "
        "the module switches to it in place. The problem's recipe (examples/recipes/) sets the "
        "trunk, optimiser phases, weighting, points and steps; flags given explicitly override "
        "it, --recipe vanilla is the plain MLP + Adam set-up. How the probe decides: "
        "docs/concepts.md; every flag: docs/cli.md.",
    )
    add_dataclass_flags(p, RunConfig)
    strategy = p.add_argument_group(
        "strategy options",
        "common strategy options; each overrides the same key of --module-options",
    )
    add_dataclass_flags(strategy, StrategyFlags)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.problem not in problems.names():
        problems.get(args.problem)  # raises with close matches
    cfg = config_from_args(RunConfig, args)
    cfg.module_options = config_from_args(StrategyFlags, args).merged_into(cfg.module_options)
    given = set(given_fields(args)) | ({"resample"} if not cfg.resample else set())
    cfg = apply_recipe(cfg, load_recipe(cfg.problem, cfg.recipe or "default"), given)
    cfg.validate()  # bad paths and options fail here, before the threads notice and any work
    # Without --threads the run starts with the default and adapts (ThreadGovernor).
    threads = cfg.threads if cfg.threads is not None else default_threads()
    if (notice := oversubscription(threads)) is not None:
        print(f"lightning-pinn run: note: {notice}", file=sys.stderr)
    summary = run.run_experiment(cfg)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def add_report(sub: argparse._SubParsersAction) -> None:
    """The ``report RUN_DIR`` subcommand."""
    p = sub.add_parser(
        "report",
        help="re-print a finished run's summary and conflict report",
        description="Read RUN_DIR/summary.json (written by `lightning-pinn run`) and the "
        "conflict report next to it, and print them.",
    )
    p.add_argument("run_dir", help="a run's log directory (the `logs:` line of `run`)")
    p.add_argument("--json", action="store_true", help="print summary.json as is")
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
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


def add_list(sub: argparse._SubParsersAction) -> None:
    """The ``list`` subcommand."""
    p = sub.add_parser("list", help="list the registered problems")
    p.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    del args
    for name in problems.names():
        p = problems.get(name)
        doc = (type(p).__doc__ or "").strip().splitlines()[0]
        print(f"{name:24s} K={len(p.loss_names)}  d={p.input_dim}  m={p.output_dim}  {doc}")
    return 0
