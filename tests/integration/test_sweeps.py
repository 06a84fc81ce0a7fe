"""W&B sweep files: every parameter is a ``lightning-pinn run`` flag, every value parses, and
one agent-style invocation logs the report table, probe figure, rel L2 and prediction figure."""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from lightning_pinn.cli import build_parser

SWEEPS = sorted((Path(__file__).parents[2] / "examples" / "sweeps").glob("*.yaml"))
TINY = {"max-steps": 20, "probe-steps": 10}


def _load(path: Path) -> dict:
    sweep = yaml.safe_load(path.read_text())
    assert sweep["command"][-1] == "${args}", "the agent's flags must come last"
    return sweep


def _fixed_args(sweep: dict) -> list[str]:
    """The command's literal arguments after ``lightning-pinn`` (subcommand, problem, flags)."""
    cmd = [c for c in sweep["command"] if not c.startswith("${")]
    assert cmd[0] == "lightning-pinn" and cmd[1] == "run"
    return cmd[1:]


def _values(spec: dict) -> list:
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    return [spec["min"], spec["max"]]  # a distribution: both ends must parse


def _agent_flags(params: dict) -> list[str]:
    """The flags a W&B agent passes for ``params`` (W&B's own formatter when available)."""
    try:
        from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

        return create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})[
            "args"
        ]
    except ImportError:  # pragma: no cover
        return [f"--{k}={v}" for k, v in params.items()]


def test_there_are_sweeps():
    assert SWEEPS


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_matches_cli_arguments(path):
    from lightning_pinn import problems
    from lightning_pinn.strategies.reweight import RULE_NAMES
    from lightning_pinn.strategies.surgery import AGGREGATOR_NAMES

    sweep = _load(path)
    assert sweep["method"] in ("grid", "random", "bayes")
    assert sweep["metric"]["name"] in ("val/rel_l2", "final/rel_l2")
    fixed = _fixed_args(sweep)
    assert fixed[1] in problems.names()
    parser = build_parser()
    run_parser = parser._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    flags = {s for a in run_parser._actions for s in a.option_strings}  # noqa: SLF001
    for key, spec in sweep["parameters"].items():
        assert f"--{key}" in flags, f"{path.name}: {key!r} is not a `lightning-pinn run` flag"
        for value in _values(spec):
            args = parser.parse_args([*fixed, *_agent_flags({key: value})])
            dest = key.replace("-", "_")
            assert getattr(args, dest) is not None
            if key == "aggregator":
                assert str(value).lower() in {n.lower() for n in AGGREGATOR_NAMES}
            if key == "reweighting":
                assert value in RULE_NAMES


def _first_cell(sweep: dict) -> dict:
    """The first parameter combination of the grid (first value of each parameter)."""
    return {k: _values(v)[0] for k, v in sweep["parameters"].items()}


@pytest.mark.slow
def test_agent_style_invocation_offline(tmp_path, run_cli, tiny_burgers_points):
    path = next(p for p in SWEEPS if p.stem == "burgers_strategies")
    sweep = _load(path)
    params = {
        **_first_cell(sweep),
        "strategy": "adapters",
        **TINY,
        "points": tiny_burgers_points,
        "out": str(tmp_path),
    }
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    proc = run_cli(*_fixed_args(sweep), *_agent_flags(params), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "relative L2 error" in proc.stdout
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert len(runs) == 1
    run = Path(runs[0])
    media = run / "files" / "media"
    assert list(media.glob("table/conflict/report_table_*.table.json"))
    assert list(media.glob("images/conflict/probe_figure_*.png"))
    assert list(media.glob("images/prediction/figure_*.png"))
    # Offline runs keep history and summary in the binary .wandb log; the value is JSON text.
    raw = next(run.glob("run-*.wandb")).read_bytes()
    # A float, exactly: the byte after the JSON text is binary and may look like "-" or "e".
    number = rb"([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    match = re.search(rb"final/rel_l2.{1,4}?" + number, raw, flags=re.S)
    assert match, "final/rel_l2 was not logged"
    summaries = list(tmp_path.glob("lightning_pinn/*/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert float(match.group(1)) == pytest.approx(summary["rel_l2"], rel=1e-5)
    assert Path(summary["prediction_figure"]).is_file()
    assert Path(summary["conflict_report"]).is_file()
