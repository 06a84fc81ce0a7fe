"""``lightning-pinn``: run a problem, list problems, report a run, benchmark, fit from YAML.

- ``run`` / ``report`` / ``list``: :mod:`~lightning_pinn.cli._run` (the ``run`` flags are
  generated from :class:`~lightning_pinn.run.RunConfig` by :mod:`~lightning_pinn.cli._flags`);
- ``benchmark``: :mod:`~lightning_pinn.cli._benchmark`;
- ``fit --config FILE.yaml``: :mod:`~lightning_pinn.cli._fit` (``LightningCLI``).

Every subcommand is described in ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from lightning.fabric.utilities.exceptions import MisconfigurationException

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
    "USER_ERRORS",
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


USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    ImportError,
    OSError,
    MisconfigurationException,  # Lightning's refusal of a Trainer setting (devices, ...)
)
"""Exceptions that describe bad input or an unusable path: ``lightning-pinn`` prints them as
one line ``lightning-pinn CMD: error: ...`` and exits with 2. Any other exception is a bug and
keeps its traceback; ``LIGHTNING_PINN_TRACEBACK=1`` shows the traceback of these too."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-pinn`` console script.

    Args:
        argv: the arguments after ``lightning-pinn`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 with a one-line error on bad input
        (:data:`USER_ERRORS`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "fit":

        def fit() -> int:
            fit_main(argv[1:])
            return 0

        return _one_line_errors("fit", fit)
    args = build_parser().parse_args(argv)
    return _one_line_errors(args.command, lambda: args.handler(args))


def _one_line_errors(command: str, call: Callable[[], int]) -> int:
    """``call()``, with a :data:`USER_ERRORS` exception turned into one line and exit code 2,
    and a run stopped by a non-finite loss (``FloatingPointError``, whose message names the
    loss, the step and the fix) into one line and exit code 1."""
    try:
        return call()
    except FloatingPointError as err:
        if os.environ.get("LIGHTNING_PINN_TRACEBACK"):
            raise
        print(
            f"lightning-pinn {command}: training stopped: {' '.join(str(err).split())}",
            file=sys.stderr,
        )
        return 1
    except USER_ERRORS as err:
        if os.environ.get("LIGHTNING_PINN_TRACEBACK"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
            message = f"{type(err).__name__}: {message}"
        print(f"lightning-pinn {command}: error: {message}", file=sys.stderr)
        return 2
