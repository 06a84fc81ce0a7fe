"""The ``run`` flags are generated from ``RunConfig``: every flag documented, the old flag names
kept, no reference to documents users do not have, a readable progress display in log files."""

from __future__ import annotations

import argparse
import dataclasses
import io

import pytest

from lightning_pinn.cli import build_parser, main
from lightning_pinn.run import LineProgressBar, RunConfig, StrategyFlags, progress_callbacks

# Every flag the README, docs/, examples/sweeps and the tests passed before the flags were
# generated; users' scripts call them.
LEGACY_RUN_FLAGS = (
    *("--max-steps", "--seed", "--strategy", "--probe-steps", "--no-switch", "--tau-dir"),
    *("--tau-mag", "--interventions", "--lr", "--lr-decay-rate", "--lr-decay-steps"),
    *("--points", "--problem-options", "--module-options", "--reweighting", "--rank"),
    *("--alpha", "--routing", "--aggregator", "--accelerator", "--devices", "--precision"),
    *("--logger", "--out", "--name", "--log-every", "--val-every", "--resume"),
    *("--no-progress-bar", "--json"),
)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    return dict(action.choices)


def _run_parser() -> argparse.ArgumentParser:
    return _subparsers(build_parser())["run"]


def test_every_flag_of_every_subcommand_has_a_help_text():
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:  # noqa: SLF001
            assert action.help and action.help.strip(), f"{name}: {action.dest} has no help"


def test_run_flags_are_the_config_fields():
    dests = {a.dest for a in _run_parser()._actions}  # noqa: SLF001
    for config in (RunConfig, StrategyFlags):
        assert {f.name for f in dataclasses.fields(config)} <= dests


def test_legacy_run_flag_names_still_parse():
    flags = {s for a in _run_parser()._actions for s in a.option_strings}  # noqa: SLF001
    assert set(LEGACY_RUN_FLAGS) <= flags, sorted(set(LEGACY_RUN_FLAGS) - flags)


def test_flags_build_the_same_config_as_python():
    args = build_parser().parse_args(
        [
            "run",
            "heat_inverse",
            "--max-steps",
            "30",
            "--no-switch",
            "--log-every",
            "5",
            "--devices",
            "2",
            "--points",
            "residual=8",
            "--no-progress-bar",
            "--strategy",
            "none",
        ]
    )
    assert args.max_steps == 30 and args.switch is False and args.log_every_n_steps == 5
    assert args.devices == 2 and args.points == {"residual": 8} and args.progress_bar is False
    defaults = build_parser().parse_args(["run", "burgers"])
    for field in dataclasses.fields(RunConfig):
        if field.name != "problem":
            assert getattr(defaults, field.name) == getattr(RunConfig(), field.name), field.name


def test_help_points_to_docs_in_this_repository(capsys):
    for name in ("run", "benchmark", "report"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert "DESIGN" not in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "docs/concepts.md" in capsys.readouterr().out


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_is_a_line_bar_only_without_a_terminal():
    assert progress_callbacks(True, _Stream(tty=True)) == []  # Lightning's TQDM bar
    assert progress_callbacks(False, _Stream(tty=False)) == []  # display off
    (bar,) = progress_callbacks(True, _Stream(tty=False))
    assert isinstance(bar, LineProgressBar)


def test_non_interactive_run_prints_a_few_lines_not_one_per_step(tmp_path, capsys):
    # pytest captures stdout (not a TTY): the run gets the line display
    code = main(
        [
            "run",
            "burgers",
            "--max-steps",
            "40",
            "--probe-steps",
            "10",
            "--points",
            "residual=32,initial=8,boundary=8",
            "--out",
            str(tmp_path),
            "--logger",
            "none",
            "--no-checkpoint",
            "--no-plots",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == [f"{s}/40" for s in range(2, 41, 2)]
    assert "\r" not in out
    (done,) = [line for line in out.splitlines() if line.startswith("training done: 40 steps")]
    last_loss = lines[-1].split("loss ")[1].split()[0]
    assert f"loss {last_loss}" in done and "val/rel_l2" in done


def test_line_bar_rejects_bad_intervals():
    with pytest.raises(ValueError, match="every"):
        LineProgressBar(every=0)
    with pytest.raises(ValueError, match="lines"):
        LineProgressBar(lines=0)
