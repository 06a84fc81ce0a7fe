"""``lightning-pinn run`` with recipes: the problem's recipe by default, ``--recipe vanilla`` as
before, explicit flags over the recipe, a tiny run through the L-BFGS phase."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from lightning_pinn.cli import main
from lightning_pinn.run import RunConfig


@pytest.fixture
def seen_config(monkeypatch):
    """The RunConfig that ``run`` would train (run_experiment replaced)."""
    seen: dict[str, RunConfig] = {}

    def fake_run(cfg):
        seen["cfg"] = cfg
        raise ValueError("stop here")

    monkeypatch.setattr("lightning_pinn.cli._run.run.run_experiment", fake_run)

    def call(*argv: str) -> RunConfig:
        assert main(["run", *argv, "--threads", "1"]) == 2
        return seen["cfg"]

    return call


@pytest.mark.parametrize(
    "extra",
    [(), ("--max-steps", "12", "--points", "residual=32", "--lr", "0.01", "--strategy", "none")],
)
def test_vanilla_recipe_is_the_config_before_recipes(seen_config, extra):
    cfg = seen_config("burgers", "--recipe", "vanilla", *extra)
    assert cfg.recipe == "vanilla"
    before = {"max_steps": 2000, "lr": 1e-3, "strategy": "auto", "points": None}
    if extra:
        before = {"max_steps": 12, "lr": 0.01, "strategy": "none", "points": {"residual": 32}}
    expected = RunConfig(problem="burgers", threads=1, **before)
    assert dataclasses.replace(cfg, recipe=None) == expected


def test_default_is_the_problems_recipe_and_flags_override_it(seen_config):
    cfg = seen_config("burgers")
    assert cfg.recipe == "burgers" and cfg.max_steps == 1000 and cfg.strategy == "auto"
    assert cfg.trunk["class_path"] == "lightning_pinn.networks.MLP"
    assert cfg.lbfgs == {"after_fraction": 0.8, "max_iter": 20, "history_size": 50}
    cfg = seen_config("burgers", "--max-steps", "300", "--lr", "0.002", "--fixed-points")
    assert (cfg.max_steps, cfg.lr, cfg.resample) == (300, 0.002, False)
    assert cfg.schedule == {"warmup_steps": 200, "decay_rate": 0.9, "decay_steps": 1000}
    cfg = seen_config("convection-b40", "--problem-options", '{"causal_eps": 0.5}')
    assert cfg.recipe == "convection-b40"
    assert cfg.problem_options == {
        "hard_constraints": ["initial"],
        "causal_eps": 0.5,
        "causal_chunks": 32,
    }


def test_unknown_recipe_is_a_one_line_error(capsys):
    assert main(["run", "burgers", "--recipe", "fancy", "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown recipe 'fancy'" in err and "vanilla" in err


def test_recipe_naming_a_missing_trunk_fails_before_training(tmp_path, capsys):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("steps: 5\ntrunk: {class_path: lightning_pinn.networks.NoSuchNet}\n")
    code = main(
        [
            "run",
            "burgers",
            "--recipe",
            str(recipe),
            "--out",
            str(tmp_path),
            "--logger",
            "none",
            "--threads",
            "1",
            "--no-progress-bar",
        ]
    )
    assert code == 2
    assert "lightning_pinn.networks.NoSuchNet" in capsys.readouterr().err


def test_tiny_default_recipe_run_goes_through_lbfgs(tmp_path):
    code = main(
        [
            "run",
            "burgers",
            "--max-steps",
            "30",
            "--points",
            "residual=64,initial=16,boundary=16",
            "--out",
            str(tmp_path),
            "--no-progress-bar",
            "--no-plots",
            "--threads",
            "1",
            "--json",
            "--log-every",
            "5",
        ]
    )
    assert code == 0
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert summary["recipe"] == "burgers" and summary["strategy"] == "auto"
    assert summary["final_strategy"] in {"none", "reweight", "adapters"}  # the probe chose
    assert summary["max_steps"] == 30 and 0 < summary["rel_l2"] < 10
    with next(tmp_path.rglob("metrics.csv")).open() as f:
        phases = {row["optim/phase"] for row in csv.DictReader(f) if row.get("optim/phase")}
    assert {float(p) for p in phases} == {0.0, 1.0}  # Adam, then L-BFGS (after step 27)


def test_vanilla_run_trains_bitwise_as_a_plain_config(tmp_path):
    from lightning_pinn.run import run_experiment

    tiny = {"max_steps": 12, "probe_steps": 6, "points": {"residual": 32, "initial": 8}}
    code = main([
        "run", "burgers", "--recipe", "vanilla", "--max-steps", "12", "--probe-steps", "6",
        "--points", "residual=32,initial=8", "--out", str(tmp_path / "cli"), "--logger", "none",
        "--no-progress-bar", "--no-plots", "--no-checkpoint", "--threads", "1",
    ])  # fmt: skip
    assert code == 0
    cli = json.loads(next((tmp_path / "cli").rglob("summary.json")).read_text())
    plain = run_experiment(
        RunConfig(
            problem="burgers",
            out=str(tmp_path / "plain"),
            logger="none",
            progress_bar=False,
            plots=False,
            checkpoint=False,
            threads=1,
            **tiny,
        )  # fmt: skip
    )
    assert cli["final_losses"] == plain["final_losses"] and cli["rel_l2"] == plain["rel_l2"]
    assert cli["recipe"] == "vanilla" and plain["recipe"] is None


def test_guarded_switch_flags_reach_the_config_and_are_checked(seen_config, capsys):
    cfg = seen_config(
        "burgers", "--trial-steps", "50", "--trial-score", "sum", "--candidates", "none,surgery"
    )
    assert (cfg.trial_steps, cfg.trial_score, cfg.candidates) == (50, "sum", ["none", "surgery"])
    assert cfg.trial_margin == 0.0
    assert seen_config("burgers", "--trial-steps", "5", "--trial-margin", "0.3").trial_margin == 0.3
    for argv, message in (
        (["--trial-margin", "0.3"], "give --trial-steps too"),
        (["--strategy", "none", "--trial-steps", "5"], "needs strategy auto"),
        (["--no-switch", "--trial-steps", "5"], "needs strategy auto"),
        (["--candidates", "none"], "give --trial-steps too"),
    ):
        assert main(["run", "burgers", *argv, "--threads", "1"]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a flag's value: argparse's usage error
        main(["run", "burgers", "--trial-steps", "5", "--candidates", "none,magic"])
    assert "unknown candidate(s) ['magic']" in capsys.readouterr().err


def test_escalation_flags_reach_the_config_and_are_checked(seen_config, capsys):
    cfg = seen_config("burgers", "--escalate", "--escalate-steps", "30")
    assert (cfg.escalate, cfg.escalate_steps) == (True, 30)
    assert seen_config("burgers").escalate is False
    for argv, message in (
        (["--strategy", "reweight", "--escalate"], "needs strategy auto"),
        (["--no-switch", "--escalate"], "needs strategy auto"),
        (["--escalate", "--trial-steps", "5"], "not both"),
        (["--escalate-steps", "5"], "give --escalate too"),
    ):
        assert main(["run", "burgers", *argv, "--threads", "1"]) == 2
        assert message in capsys.readouterr().err


def test_reprobe_flag_reaches_the_config_and_is_checked(seen_config, capsys):
    assert seen_config("burgers", "--reprobe-every", "100").reprobe_every == 100
    assert seen_config("burgers").reprobe_every is None
    for argv, message in (
        (["--strategy", "adapters", "--reprobe-every", "100"], "needs strategy auto"),
        (["--no-switch", "--reprobe-every", "100"], "needs strategy auto"),
    ):
        assert main(["run", "burgers", *argv, "--threads", "1"]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not a positive integer: argparse's usage error
        main(["run", "burgers", "--reprobe-every", "0"])


def test_a_reprobing_run_reprobes_before_its_lbfgs_phase_and_escalates_in_its_window(tmp_path):
    from lightning_pinn.run import run_experiment

    # L-BFGS after 80% of 60 steps = 48 module steps; probe 20, then windows of
    # min(20, 10) = 10 steps every 10: they end at 30 and 40; the one ending at 50 is cut
    # short by the phase and dropped.
    quiet = {"logger": "none", "progress_bar": False, "plots": False, "checkpoint": False}
    points = {"residual": 32, "initial": 8, "boundary": 8}
    common = dict(problem="burgers", threads=1, max_steps=60, probe_steps=20, points=points)
    lbfgs = {"after_fraction": 0.8, "max_iter": 2}
    summary = run_experiment(
        RunConfig(out=str(tmp_path / "a"), reprobe_every=10, lbfgs=lbfgs, **common, **quiet)
    )
    assert [e["step"] for e in summary["report"]["reprobes"]] == [30, 40]
    # with escalation too: its window (the probe's 20, cut to fit before the phase: 28
    # steps of room) is no longer than reprobe_every, so the first re-probe window escalates
    summary = run_experiment(
        RunConfig(
            out=str(tmp_path / "b"), reprobe_every=10, escalate=True, lbfgs=lbfgs, **common,
            **quiet,
        )
    )  # fmt: skip
    report = summary["report"]
    assert report["regime"] == "directional" and report["strategy"] == "reweight"
    assert report["reprobes"][0]["step"] == 30


def test_escalating_run_fits_its_window_before_the_lbfgs_phase(tmp_path):
    from lightning_pinn.run import run_experiment

    # L-BFGS after 80% of 40 steps = 32 module steps; probe 20 leaves a window of 12 (not
    # the probe's 20), so the escalation decides at step 32, before the phase.
    quiet = {"logger": "none", "progress_bar": False, "plots": False, "checkpoint": False}
    summary = run_experiment(
        RunConfig(
            problem="burgers", out=str(tmp_path), threads=1, max_steps=40, probe_steps=20,
            escalate=True, lbfgs={"after_fraction": 0.8, "max_iter": 2},
            points={"residual": 32, "initial": 8, "boundary": 8}, **quiet,
        )
    )  # fmt: skip
    report = summary["report"]
    assert report["regime"] == "directional" and report["strategy"] == "reweight"
    (event,) = report["reprobes"]
    assert event["step"] == 32 and event["strategy"] == "reweight"
    assert summary["final_strategy"] == (event["switched_to"] or "reweight")


def _quiet_config(tmp_path, problem: str, **fields) -> RunConfig:
    """A 4-step run of ``problem``: no logger, plots, checkpoints or progress bar."""
    quiet = {"logger": "none", "progress_bar": False, "plots": False, "checkpoint": False}
    return RunConfig(problem=problem, out=str(tmp_path), threads=1, max_steps=4, **quiet, **fields)


def test_a_run_shows_none_of_lightnings_inapplicable_notices(tmp_path):
    import warnings

    from lightning_pinn.run import run_experiment

    cfg = _quiet_config(tmp_path, "burgers", probe_steps=2, points={"residual": 16, "initial": 4})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # as a user's shell shows them
        run_experiment(cfg)
    messages = [str(w.message) for w in seen]
    for noise in ("LeafSpec", "does not have many workers", "no pre-optimization state"):
        assert not any(noise in m for m in messages), messages


def test_a_single_loss_problem_trains_without_a_probe(tmp_path):
    """Every condition imposed exactly leaves K = 1: nothing to compare, so `run` trains it
    (auto stays `none`) instead of failing in the conflict callback's K >= 2 check."""
    from lightning_pinn.run import run_experiment

    options = {"hard_constraints": ["initial", "boundary"]}
    cfg = _quiet_config(
        tmp_path, "wave", recipe="vanilla", problem_options=options, points={"residual": 16}
    )
    summary = run_experiment(cfg)
    assert summary["final_losses"].keys() == {"residual"} and summary["report"] is None
    assert summary["final_strategy"] == "none" and summary["steps"] == 4
    trial = dataclasses.replace(cfg, trial_steps=1)
    with pytest.raises(ValueError, match="one loss.*drop --trial-steps"):
        run_experiment(trial)
