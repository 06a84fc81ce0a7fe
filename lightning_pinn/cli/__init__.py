"""``lightning-pinn``: run a problem, list problems, report a run, benchmark, fit from YAML.

- ``run`` / ``report`` / ``list``: :mod:`~lightning_pinn.cli._run` (the ``run`` flags are
  generated from :class:`~lightning_pinn.run.RunConfig` by :mod:`~lightning_pinn.cli._flags`);
- ``benchmark``: :mod:`~lightning_pinn.cli._benchmark`;
- ``fit --config FILE.yaml``: :mod:`~lightning_pinn.cli._fit` (``LightningCLI``).

Every subcommand is described in ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lightning_pinn.cli._benchmark import add_benchmark
from lightning_pinn.cli._fit import (
    ConfigProblemModule,
    PINNLightningCLI,
    ProblemDataModule,
    fit_main,
)
from lightning_pinn.cli._run import add_list, add_report, add_run

__all__ = [
    "ConfigProblemModule",
    "PINNLightningCLI",
    "ProblemDataModule",
    "build_parser",
    "fit_main",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``lightning-pinn`` parser (``fit`` is listed here; ``LightningCLI`` parses it)."""
    parser = argparse.ArgumentParser(
        prog="lightning-pinn",
        description="Physics-informed neural networks that diagnose gradient conflict. "
        "Documentation: docs/index.md, every flag: docs/cli.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_run(sub)
    add_list(sub)
    add_report(sub)
    add_benchmark(sub)
    sub.add_parser(
        "fit",
        help="train from a LightningCLI YAML config (fit --config FILE)",
        description="Train from a LightningCLI YAML config; `lightning-pinn fit --help` "
        "lists its keys.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-pinn`` console script.

    Args:
        argv: the arguments after ``lightning-pinn`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 with a one-line error on bad input.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "fit":
        try:
            fit_main(argv[1:])
        except (ValueError, TypeError) as err:  # bad problem name/options: one line, exit 2
            print(f"lightning-pinn fit: error: {err}", file=sys.stderr)
            return 2
        return 0
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, ImportError, FileNotFoundError) as err:
        print(f"lightning-pinn {args.command}: error: {err}", file=sys.stderr)
        return 2
