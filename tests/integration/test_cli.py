"""``lightning-pinn`` end to end in a subprocess: run, list, report, bad arguments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lightning_pinn.cli import main


@pytest.mark.slow
def test_run_burgers_end_to_end_then_report(tmp_path, run_cli, tiny_burgers_points):
    proc = run_cli(
        "run",
        "burgers",
        "--max-steps",
        "20",
        "--probe-steps",
        "10",
        "--points",
        tiny_burgers_points,
        "--out",
        str(tmp_path / "tmp"),
        "--no-progress-bar",
        "--rank",
        "2",
        "--routing",
        "shared",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "relative L2 error" in proc.stdout
    log_line = next(line for line in proc.stdout.splitlines() if line.startswith("logs: "))
    run_dir = log_line.removeprefix("logs: ").strip()
    assert run_dir.startswith(str(tmp_path / "tmp"))
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    for key in ("prediction_figure", "error_field", "conflict_report"):
        assert summary[key] and os.path.isfile(summary[key]), key
    assert summary["report"]["probe_steps"] == 10

    report = run_cli("report", run_dir)
    assert report.returncode == 0, report.stderr
    assert "relative L2 error" in report.stdout and "Regime" in report.stdout
    assert "prediction figure" in report.stdout


def test_list_names_the_problems(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "burgers" in out and "helmholtz" in out


def test_unknown_problem_is_one_line_with_close_matches(capsys):
    assert main(["run", "burgrs", "--max-steps", "5"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "burgers" in err and "Did you mean" in err


@pytest.mark.parametrize("flag", ["--max-steps", "--probe-steps", "--rank"])
def test_negative_counts_are_rejected(flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "burgers", flag, "-5"])
    assert exc.value.code != 0
    assert "positive integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["run", "burgers", "--seed", "-1"], ["benchmark", "--seeds", "0", "4294967296"]],
    ids=["run", "benchmark"],
)
def test_out_of_range_seeds_are_rejected_before_any_run(argv, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "argument --seed" in err and "expected a seed in [0, 4294967295]" in err
    assert not (tmp_path / "out").exists()


def test_lbfgs_inside_the_probe_is_an_error_before_any_folder(capsys, tmp_path):
    argv = ["run", "burgers", "--max-steps", "60", "--probe-steps", "40", "--threads", "1"]
    argv += ["--lbfgs", '{"after": 20}', "--out", str(tmp_path / "out")]
    assert main(argv) == 2  # a one-line user error
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "starts after step 20, inside the probe of 40" in err
    assert not (tmp_path / "out").exists()


def test_module_options_that_have_their_own_flag_are_an_error(capsys, tmp_path):
    argv = ["run", "burgers", "--max-steps", "4", "--out", str(tmp_path / "out")]
    assert main([*argv, "--module-options", '{"strategy": "adapters", "lr": 0.1}']) == 2
    err = capsys.readouterr().err.strip()  # before: "got multiple values for keyword argument"
    assert "--module-options sets ['lr', 'strategy']" in err
    assert "strategy -> --strategy" in err and not (tmp_path / "out").exists()


def test_resuming_another_problems_checkpoint_is_an_error_before_training(capsys, tmp_path):
    first = ["run", "burgers", "--max-steps", "4", "--strategy", "adapters", "--threads", "1"]
    first += ["--points", "residual=32", "--no-plots", "--out", str(tmp_path / "a")]
    assert main(first) == 0
    ckpt = next((tmp_path / "a").rglob("last.ckpt"))
    capsys.readouterr()
    second = ["run", "helmholtz", "--resume", str(ckpt), "--out", str(tmp_path / "b")]
    assert main(second) == 2
    err = capsys.readouterr().err.strip()
    assert "was saved by a run of problem 'burgers', not 'helmholtz'" in err
    assert not (tmp_path / "b").exists()
    # the same problem on another network: the adapters' layers do not fit (before: only
    # "rank=4 exceeds min(in, out) = 1 of layer 'net.4'", which did not say why)
    trunk = '{"class_path": "lightning_pinn.networks.MLP", "init_args": {"width": 8, "depth": 2}}'
    third = ["run", "burgers", "--resume", str(ckpt), "--strategy", "adapters", "--trunk", trunk]
    assert main([*third, "--max-steps", "8", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "the checkpoint's adapters sit on layers" in err and "resume with the same network" in err
    )


def test_a_run_too_short_for_a_probe_is_a_one_line_error(capsys, tmp_path):
    # before: a 1-step probe ran and every such run ended with "no diagnosis, no switch"
    out = ["--out", str(tmp_path / "out"), "--threads", "1", "--no-plots"]
    assert main(["run", "burgers", "--max-steps", "1", *out]) == 2
    err = capsys.readouterr().err.strip()
    assert "--max-steps 1 leaves no room for the conflict probe" in err
    assert main(["run", "burgers", "--max-steps", "8", "--probe-steps", "1", *out]) == 2
    assert "--probe-steps must be an integer >= 2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # the callback's own checks run before the logger makes its folder (before: out/burgers/
    # version_0 was left behind)
    assert main(["run", "burgers", "--max-steps", "8", "--reprobe-every", "1", *out]) == 2
    assert "re-probe window of 1 step can never diagnose" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_refusals_after_the_logger_leave_no_folder_and_names_stay_inside_out(capsys, tmp_path):
    out = tmp_path / "out"
    args = ["--out", str(out), "--threads", "1", "--no-plots", "--max-steps", "6"]
    # Lightning checks --precision when the Trainer is built, the callback checks the
    # adapters in setup: both after the logger claimed OUT/NAME/version_0 (left behind before)
    assert main(["run", "burgers", "--precision", "8-mixed", *args]) == 2
    assert "Precision '8-mixed' is invalid" in capsys.readouterr().err
    assert not out.exists()
    kept = out / "burgers" / "version_0" / "mine.txt"
    kept.parent.mkdir(parents=True)
    kept.write_text("x")
    assert main(["run", "burgers", "--module-options", '{"rank": 0}', *args]) == 2
    assert "rank must be a positive integer" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "burgers").iterdir()) == ["version_0"]  # theirs kept
    assert kept.read_text() == "x"
    # a --name with a path in it wrote outside --out (before: OUT/../../escape)
    assert main(["run", "burgers", "--name", "../escape", *args]) == 2
    assert "must be one folder name" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists()


def test_missing_accelerator_and_zero_devices_are_one_line_errors(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = ["--out", str(tmp_path / "out"), "--max-steps", "4"]
    assert main(["run", "burgers", "--accelerator", "gpu", *out]) == 2
    err = capsys.readouterr().err.strip()  # before: a MisconfigurationException traceback
    assert len(err.splitlines()) == 1 and "--accelerator gpu: torch sees no such device" in err
    assert not (tmp_path / "out").exists()
    # tpu (no XLA here) and an unknown name: the same early one-line error (before: the
    # run folder was made first, then Lightning's traceback)
    assert main(["run", "burgers", "--accelerator", "tpu", *out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--accelerator tpu: torch sees no such device" in err
    assert main(["run", "burgers", "--accelerator", "npu", *out]) == 2
    err = capsys.readouterr().err.strip()
    assert "--accelerator npu: unknown; choose one of auto, gpu, cpu" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["run", "burgers", "--devices", "0", *out])
    assert "expected a device count >= 1" in capsys.readouterr().err


def test_bad_routing_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "burgers", "--routing", "everyone"])
    assert exc.value.code != 0
    assert "invalid choice" in capsys.readouterr().err


def test_report_of_missing_run_fails_clearly(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "summary.json does not exist" in capsys.readouterr().err


def test_strategy_flags_reach_module_options(monkeypatch):
    import lightning_pinn.run as experiment

    seen = {}

    def fake_run(cfg):
        seen["cfg"] = cfg
        raise ValueError("stop here")

    monkeypatch.setattr(experiment, "run_experiment", fake_run)
    code = main(
        [
            "run",
            "burgers",
            "--rank",
            "8",
            "--reweighting",
            "lra",
            "--aggregator",
            "pcgrad",
            "--routing",
            "shared",
            "--alpha",
            "2",
            "--module-options",
            '{"rank": 2, "blockwise": true}',
        ]
    )
    assert code == 2
    assert seen["cfg"].module_options == {
        "rank": 8,
        "blockwise": True,
        "reweighting": "lra",
        "aggregator": "pcgrad",
        "routing": "shared",
        "alpha": 2.0,
    }


def _tiny_report(tmp_path, *flags: str) -> dict:
    """The conflict report of a 12-step Burgers run (6-step probe) with extra ``flags``."""
    args = ["run", "burgers", "--max-steps", "12", "--probe-steps", "6"]
    args += ["--points", "residual=32,initial=8,boundary=8", "--out", str(tmp_path)]
    args += ["--no-progress-bar", "--logger", "none", "--json", *flags]
    assert main(args) == 0
    return json.loads(next(tmp_path.rglob("summary.json")).read_text())


def test_interventions_and_thresholds_reach_the_diagnosis(tmp_path):
    # every regime mapped to reweight: the run switches to reweight whatever it diagnoses
    summary = _tiny_report(
        tmp_path,
        *("--tau-dir", "0.3", "--tau-mag", "0.5"),
        *("--interventions", "directional=reweight,magnitude=reweight,low=reweight"),
    )
    assert summary["final_strategy"] == "reweight"
    assert (summary["report"]["tau_dir"], summary["report"]["tau_mag"]) == (0.3, 0.5)
    assert summary["report"]["interventions"]["directional"] == "reweight"


def test_run_diagnoses_with_the_recipe_map_rule_and_the_callback_keeps_the_design_rule(tmp_path):
    from lightning_pinn import ConflictCallback
    from lightning_pinn.diagnostics import RULES

    report = _tiny_report(tmp_path)["report"]
    assert {k: report[k] for k in ("tau_dir", "tau_mag", "tau_cos")} == RULES["recipe-map"]
    cb = ConflictCallback()
    assert {"tau_dir": cb.tau_dir, "tau_mag": cb.tau_mag, "tau_cos": cb.tau_cos} == RULES["design"]


def test_a_named_rule_sets_the_thresholds_and_single_flags_override_it(tmp_path):
    report = _tiny_report(tmp_path, "--regime-rule", "recipe-map", "--tau-mag", "2.0")["report"]
    assert (report["tau_dir"], report["tau_mag"], report["tau_cos"]) == (0.5, 2.0, 0.6)


@pytest.mark.parametrize(
    "text, message",
    [
        ("directional", "REGIME=STRATEGY"),
        ("sideways=none", "unknown regime"),
        ("low=magic", "unknown intervention"),
    ],
)
def test_bad_interventions_are_rejected(text, message, capsys):
    with pytest.raises(SystemExit):
        main(["run", "burgers", "--interventions", text])
    assert message in capsys.readouterr().err


def test_an_inverse_runs_summary_reads_its_coefficients_without_autograd_warnings(
    tmp_path, run_cli
):
    proc = run_cli(
        "run",
        "heat_inverse",
        "--recipe",
        "vanilla",
        "--max-steps",
        "4",
        "--probe-steps",
        "2",
        "--points",
        "residual=32,boundary=8",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "runs"),
        "--no-progress-bar",
        "--no-plots",
        "--no-checkpoint",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert summary["coefficients"] and all(
        isinstance(c["value"], float) for c in summary["coefficients"].values()
    )
    assert "requires_grad=True to a scalar" not in proc.stderr


def test_a_run_checkpoint_loads_with_load_from_checkpoint_alone(tmp_path):
    """The recipe's trunk (Burgers: MLP 20x8, not the problem's default 64x4) is kept in the
    checkpoint as its spec, so Lightning's load_from_checkpoint(path) rebuilds the trained
    model, adapters included (before: a size-mismatch error unless the user rebuilt it)."""
    from lightning_pinn import problems
    from lightning_pinn.problems import ProblemModule

    out = tmp_path / "out"
    args = ["run", "burgers", "--max-steps", "12", "--probe-steps", "4", "--threads", "1"]
    assert main([*args, "--no-plots", "--out", str(out)]) == 0
    summary = json.loads(next(out.rglob("summary.json")).read_text())
    loaded = ProblemModule.load_from_checkpoint(next(out.rglob("last.ckpt")))
    assert loaded.hparams["trunk"]["init_args"] == {"width": 20, "depth": 8}
    assert loaded.strategy_name == summary["report"]["strategy"] and loaded.has_adapters
    problem = problems.get("burgers")
    x = problem.eval_points()
    with torch.no_grad():
        pred, ref = loaded(x), problem.reference(x)
    rel = float((pred - ref).norm() / ref.norm())
    assert rel == pytest.approx(summary["rel_l2"], rel=1e-5)
