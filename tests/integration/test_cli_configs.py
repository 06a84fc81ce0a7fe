"""``lightning-pinn fit --config``: every example config runs, bad configs fail clearly."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

from lightning_pinn import PINNModule, problems
from lightning_pinn.cli import ConfigProblemModule, fit_main

CONFIGS = sorted((Path(__file__).parents[2] / "examples" / "configs").glob("*.yaml"))
FAMILIES = {"burgers", "allen_cahn", "helmholtz", "heat_inverse", "thermoelastic", "poisson_nd-d50"}


pytestmark = pytest.mark.usefixtures("plain_argv")


def _tiny(config: Path, tmp_path: Path) -> list[str]:
    problem = yaml.safe_load(config.read_text())["data"]["problem"]
    sets = problems.get(problem).point_sets()
    points = "{" + ", ".join(f"{name}: 8" for name in sets) + "}"
    return [
        "--config",
        str(config),
        "--trainer.max_steps",
        "4",
        "--trainer.val_check_interval",
        "4",
        "--trainer.callbacks.probe_steps",
        "2",
        "--trainer.logger.save_dir",
        str(tmp_path),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_checkpointing",
        "false",
        "--data.points",
        points,
        "--data.eval_batch_size",
        "4096",
    ]


def test_one_config_per_family():
    assert {p.stem for p in CONFIGS} >= FAMILIES


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_config_runs(config, tmp_path, capsys):
    problem = yaml.safe_load(config.read_text())["data"]["problem"]
    if problem not in problems.names():  # pragma: no cover - only while problems are added
        pytest.skip(f"problem {problem!r} is not registered yet")
    fit_main(_tiny(config, tmp_path))
    out = capsys.readouterr().out
    assert "relative L2 error:" in out and "regime:" in out
    run_dirs = list(tmp_path.glob("*/version_0"))
    assert len(run_dirs) == 1
    files = {p.name for p in run_dirs[0].iterdir()}
    assert {"conflict_report.md", "conflict_probe.png", "prediction.png", "config.yaml"} <= files


def test_print_config_resolves_linked_problem(capsys):
    with pytest.raises(SystemExit) as exc:
        fit_main(["--config", str(CONFIGS[0]), "--data.problem", "helmholtz", "--print_config"])
    assert exc.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["problem"] == "helmholtz"
    assert cfg["trainer"]["check_val_every_n_epoch"] is None
    assert isinstance(cfg["trainer"]["val_check_interval"], int)
    assert cfg["trainer"]["callbacks"][0]["class_path"].endswith("ConflictCallback")
    assert "problem" not in cfg["model"]  # linked from data, never given twice


def test_misspelled_key_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {problem: burgers}\ntrainer: {max_stpes: 3}\n")
    with pytest.raises(SystemExit) as exc:
        fit_main(["--config", str(bad)])
    assert exc.value.code != 0
    assert "max_stpes" in capsys.readouterr().err


def test_model_problem_cannot_disagree_with_data(capsys):
    with pytest.raises(SystemExit) as exc:
        fit_main(["--config", str(CONFIGS[0]), "--model.problem", "helmholtz", "--print_config"])
    assert exc.value.code != 0
    assert "model.problem" in capsys.readouterr().err


def test_unknown_problem_is_one_line_with_close_matches(tmp_path, capsys):
    from lightning_pinn.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {problem: burgrs}\n")
    assert main(["fit", "--config", str(bad), "--trainer.logger", "false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lightning-pinn fit: error: unknown problem 'burgrs'")
    assert "Did you mean 'burgers'" in err[-1]


def test_config_module_signature_covers_pinnmodule():
    ours = set(inspect.signature(ConfigProblemModule).parameters)
    theirs = set(inspect.signature(PINNModule).parameters) - {"model", "loss_names", "field_names"}
    assert theirs <= ours, f"ConfigProblemModule lacks {sorted(theirs - ours)}"


def _adapter_config(tmp_path: Path, init_args: str) -> Path:
    path = tmp_path / "adapters.yaml"
    path.write_text(
        "data:\n"
        "  problem: burgers\n"
        "  points: {residual: 16, initial: 8, boundary: 8}\n"
        "model:\n"
        "  trunk:\n"
        "    class_path: lightning_pinn.MLP\n"
        "    init_args: {in_dim: 2, out_dim: 1, width: 16, depth: 2}\n"
        "  strategy:\n"
        "    class_path: lightning_pinn.strategies.AdapterStrategy\n"
        f"    init_args: {init_args}\n"
        "trainer:\n"
        "  max_steps: 3\n"
        "  val_check_interval: 3\n"
        "  enable_checkpointing: false\n"
        "  enable_progress_bar: false\n"
        "  logger:\n"
        "    class_path: lightning.pytorch.loggers.CSVLogger\n"
        f"    init_args: {{save_dir: {tmp_path}, name: adapters}}\n"
    )
    return path


def test_strategy_object_by_class_path_trains(tmp_path, capsys):
    cli = fit_main(["--config", str(_adapter_config(tmp_path, "{rank: 8}"))])
    assert cli.model.strategy.rank == 8 and cli.model.has_adapters
    out = capsys.readouterr().out
    assert "steps: 3" in out and "strategy: adapters" in out
    assert "relative L2 error:" in out
    saved = yaml.safe_load(next(tmp_path.glob("adapters/version_0/config.yaml")).read_text())
    strategy = saved["model"]["strategy"]
    assert strategy["class_path"] == "lightning_pinn.strategies.AdapterStrategy"
    assert strategy["init_args"]["rank"] == 8


def test_misspelled_strategy_option_is_jsonargparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        fit_main(["--config", str(_adapter_config(tmp_path, "{rnak: 8}"))])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "rnak" in err and "AdapterStrategy" in err


def test_config_module_signature_is_generated_from_pinnmodule():
    ours = inspect.signature(ConfigProblemModule).parameters
    theirs = inspect.signature(PINNModule).parameters
    for name in set(theirs) - {"model", "loss_names", "field_names"}:
        if theirs[name].kind is not inspect.Parameter.VAR_KEYWORD:
            assert ours[name].default == theirs[name].default, name
    assert "strategy_options" in ours  # PINNModule's **strategy_options, as one YAML key


def _flat_config(tmp_path: Path, model_lines: str) -> Path:
    path = tmp_path / "flat.yaml"
    path.write_text(
        "data:\n"
        "  problem: burgers\n"
        "  points: {residual: 16, initial: 8, boundary: 8}\n"
        "model:\n"
        "  trunk:\n"
        "    class_path: lightning_pinn.MLP\n"
        "    init_args: {in_dim: 2, out_dim: 1, width: 16, depth: 2}\n"
        f"{model_lines}"
        "trainer:\n"
        "  max_steps: 2\n"
        "  val_check_interval: 2\n"
        "  enable_checkpointing: false\n"
        "  enable_progress_bar: false\n"
        "  logger: false\n"
    )
    return path


def test_flat_strategy_options_of_older_configs_still_work(tmp_path):
    config = _flat_config(tmp_path, "  strategy: adapters\n  rank: 2\n  routing: shared\n")
    cli = fit_main(["--config", str(config)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.yaml"]
    assert cli.model.strategy.rank == 2 and cli.model.strategy.routing == "shared"


def test_flat_and_nested_strategy_option_together_is_an_error(tmp_path, capsys):
    config = _flat_config(tmp_path, "  rank: 2\n  strategy_options: {rank: 3}\n")
    with pytest.raises((SystemExit, ValueError)):
        fit_main(["--config", str(config)])


def test_fit_without_logger_writes_no_file(tmp_path, monkeypatch, capsys):
    config = _flat_config(tmp_path, "")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    fit_main(["--config", str(config)])
    assert list(work.iterdir()) == []
    assert "relative L2 error:" in capsys.readouterr().out


def test_fixed_points_from_yaml(tmp_path):
    config = _flat_config(tmp_path, "")
    cli = fit_main(["--config", str(config), "--data.resample", "false"])
    first, later = cli.datamodule.sample(0), cli.datamodule.sample(5)
    assert all(torch.equal(first[k], later[k]) for k in first)
