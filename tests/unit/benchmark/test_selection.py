"""Selection-accuracy and calibration arithmetic on a hand-made results file."""

import dataclasses
import json
import math

import pytest

from lightning_pinn import benchmark


def _script(name):
    """A script of ``benchmarks/`` loaded as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[3] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(rate, cos, imb):
    return {
        "regime": "x",
        "loss_names": ["a", "b"],
        "pairs": [{"late_conflict_rate": rate, "late_mean_cosine": cos}],
        "median_imbalance": imb,
    }


def _records():
    # config "dir": persistent conflict, adapters best; "mag": imbalance, reweight best;
    # "low": nothing, none best; "miss": looks directional but none is best by far.
    specs = {
        "dir": (_report(0.9, -0.4, 0.2), {"none": 1.0, "reweight": 0.9, "adapters": 0.1}),
        "mag": (_report(0.1, 0.3, 1.6), {"none": 1.0, "reweight": 0.2, "adapters": 0.5}),
        "low": (_report(0.2, 0.4, 0.3), {"none": 0.1, "reweight": 0.11, "adapters": 0.3}),
        "miss": (_report(0.7, -0.1, 0.1), {"none": 0.1, "reweight": 0.5, "adapters": 0.9}),
    }
    out = []
    for config, (report, medians) in specs.items():
        for seed in (0, 1, 2):
            for strategy, value in medians.items():
                out.append(
                    {
                        "key": f"{config}|{strategy}|{seed}",
                        "problem": config,
                        "strategy": strategy,
                        "seed": seed,
                        # seed 1 is the median of (0.5x, 1x, 3x)
                        "rel_l2": value * (0.5, 1.0, 3.0)[seed],
                        "report": report if strategy == "none" else None,
                    }
                )
    return out


def test_best_pick_and_accuracy():
    result = benchmark.selection_accuracy(_records())
    rows = {r["config"]: r for r in result["rows"]}
    assert {c: r["best"] for c, r in rows.items()} == {
        "dir": "adapters",
        "mag": "reweight",
        "low": "none",
        "miss": "none",
    }
    assert {c: r["pick"] for c, r in rows.items()} == {
        "dir": "adapters",
        "mag": "reweight",
        "low": "none",
        "miss": "adapters",
    }
    assert rows["dir"]["medians"]["adapters"] == pytest.approx(0.1)
    assert [rows[c]["hit"] for c in ("dir", "mag", "low", "miss")] == [True, True, True, False]
    assert result["accuracy"] == pytest.approx(0.75)
    # within 1.25x of the best: none on low and miss; reweight on mag and low (0.11 <= 0.125)
    assert result["constant_pick_accuracy"] == {"none": 0.5, "reweight": 0.5, "adapters": 0.25}
    assert result["auto_run_accuracy"] is None  # no auto cells in this file


def test_auto_runs_are_scored_against_the_best_fixed_strategy():
    records = _records()
    records.append({"problem": "dir", "strategy": "auto", "seed": 0, "rel_l2": 0.12, "key": "a"})
    records.append({"problem": "mag", "strategy": "auto", "seed": 0, "rel_l2": 0.5, "key": "b"})
    result = benchmark.selection_accuracy(records)
    rows = {r["config"]: r for r in result["rows"]}
    assert rows["dir"]["auto_hit"] is True  # 0.12 <= 1.25 * 0.1
    assert rows["mag"]["auto_hit"] is False  # 0.5 > 1.25 * 0.2
    assert result["auto_run_accuracy"] == 0.5


def test_within_tolerance_counts_as_hit():
    records = _records()
    for r in records:  # adapters 0.12 vs best (none) 0.1: within 1.25x
        if r["problem"] == "miss" and r["strategy"] == "adapters":
            r["rel_l2"] *= 0.12 / 0.9
    rows = {r["config"]: r for r in benchmark.selection_accuracy(records)["rows"]}
    assert rows["miss"]["best"] == "none" and rows["miss"]["pick"] == "adapters"
    assert rows["miss"]["hit"] is True
    high = {r["config"]: r for r in benchmark.selection_accuracy(records, tau_dir=0.95)["rows"]}
    assert high["dir"]["pick"] == "none" and high["dir"]["hit"] is False


def test_calibration_uses_only_the_calibration_half():
    records = _records()
    cal = benchmark.calibrate(records)
    assert sorted(cal["calibration"] + cal["held_out"]) == ["dir", "low", "mag", "miss"]
    assert not set(cal["calibration"]) & set(cal["held_out"])
    assert cal["calibration_accuracy"] == 1.0 or cal["tau_dir"] is not None
    assert 0.0 <= cal["held_out_accuracy"] <= 1.0


def test_analyze_writes_outputs(tmp_path):
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in _records()))
    benchmark.analyze(tmp_path)
    assert "| dir |" in (tmp_path / "table.md").read_text()
    data = json.loads((tmp_path / "selection.json").read_text())
    assert data["selection"]["accuracy"] == pytest.approx(0.75)
    assert (tmp_path / "regime_map.png").stat().st_size > 1000


def test_make_cells_validates():
    with pytest.raises(ValueError, match="unknown strategies"):
        benchmark.make_cells(["burgers"], ["magic"], [0], 10, 5)
    with pytest.raises(ValueError, match="probe_steps"):
        benchmark.make_cells(["burgers"], ["none"], [0], 10, 50)


def test_shards_partition_the_cells():
    from lightning_pinn.cli import build_parser

    args = build_parser().parse_args(["benchmark", "--shard", "1/3"])
    assert args.shard == (1, 3)
    cells = benchmark.make_cells(["burgers", "wave"], ["none", "auto"], [0, 1], 10, 5)
    shards = [cells[i::3] for i in range(3)]
    assert sorted(c.key for s in shards for c in s) == sorted(c.key for c in cells)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["benchmark", "--shard", "3/3"])


def test_run_options_extend_the_key_and_are_validated():
    from lightning_pinn.cli import build_parser

    plain = benchmark.make_cells(["burgers"], ["none"], [0], 10, 5)[0]
    assert plain.key == "burgers|none|0|10|5|"  # older result files keep matching
    decayed = benchmark.make_cells(
        ["burgers"], ["none"], [0], 10, 5, run_options={"lr_decay_rate": 0.9}
    )[0]
    assert decayed.key == "burgers|none|0|10|5||lr_decay_rate=0.9"
    with pytest.raises(ValueError, match="unknown run options"):
        benchmark.make_cells(["burgers"], ["none"], [0], 10, 5, run_options={"momentum": 0.9})
    args = build_parser().parse_args(
        ["benchmark", "--lr-decay-rate", "0.9", "--lr-decay-steps", "100", "--threads", "1"]
    )
    assert (args.lr_decay_rate, args.lr_decay_steps, args.threads, args.lr) == (0.9, 100, 1, None)


def test_a_custom_rule_replaces_the_thresholds():
    # defaults miss "miss" (directional -> adapters, 9x worse than none): 3 of 4
    assert benchmark.selection_accuracy(_records())["accuracy"] == pytest.approx(0.75)

    def strong_conflict_only(report):  # directional only with a strongly negative cosine
        (pair,) = report["pairs"]
        if pair["late_conflict_rate"] >= 0.5 and pair["late_mean_cosine"] <= -0.3:
            return "adapters"
        return "reweight" if report["median_imbalance"] >= 1.0 else "none"

    result = benchmark.selection_accuracy(_records(), rule=strong_conflict_only)
    assert result["accuracy"] == 1.0
    assert {r["config"]: r["pick"] for r in result["rows"]}["miss"] == "none"


def test_rule_families_choose_on_the_calibration_half_only():
    module = _script("rule_families")
    records = _records()
    for r in records:
        if r["report"]:
            r["report"] = {**r["report"], "update_conflict_share": 0.5}
    rows = {row["family"]: row for row in module.evaluate(records)}
    # halves of the sorted configs: calibration (dir, mag), held-out (low, miss)
    design = rows["design"]
    assert design["calibration"] == 1.0
    assert design["chosen"] == "tau_dir=0.5, tau_mag=1.0"  # ties keep the defaults
    assert design["held_out"] == 0.5 and design["held_out_misses"] == ["miss"]
    assert rows["always none"]["held_out"] == 1.0


def test_budget_table_reads_the_validation_curve():
    module = _script("budget_table")
    record = {
        "problem": "burgers",
        "strategy": "auto",
        "final_strategy": "adapters",
        "seed": 0,
        "options": {},
        "run_options": {"lr_decay_rate": 0.9, "val_every": 1000},
        "val_curve": [[1000, 0.5], [2000, 0.2], [3000, 0.3]],
    }
    (row,) = module.rows([record, {**record, "val_curve": []}], [2000, 5000])
    assert row == ["burgers", "auto → adapters", "0", "lr_decay_rate=0.9", "0.2", "—", "0.2 @ 2000"]


def test_halves_of_registered_configs_do_not_move_when_results_are_added():
    from lightning_pinn import problems

    names = sorted(problems.names())
    calib, held = benchmark.split_configs(names[:5])
    calib2, held2 = benchmark.split_configs(names)
    assert set(calib) <= set(calib2) and set(held) <= set(held2)
    assert set(calib2).isdisjoint(held2)
    assert len(calib2) + len(held2) == len(names) - len(problems.aliases())


def test_an_alias_is_in_neither_half_and_moves_no_other_configuration():
    from lightning_pinn import problems

    names = problems.builtin_names()
    aliases = problems.aliases()
    assert aliases["poisson_nd"] == "poisson_nd-d5"
    calib, held = benchmark.split_configs(names)
    assert "poisson_nd" not in calib + held and "poisson_nd-d5" in calib + held
    # the alternation still steps over the alias: every other name keeps its place
    assert calib == [n for n in names[0::2] if n not in aliases]
    assert held == [n for n in names[1::2] if n not in aliases]
    # names that are not built in alternate among themselves, after the built-in ones; a
    # built-in alias stays out wherever it comes from
    assert benchmark.split_configs(["poisson_nd", "zz-mine", "zz-other"]) == (
        ["zz-mine"],
        ["zz-other"],
    )


def test_a_users_registered_problem_moves_no_built_in_configuration(monkeypatch):
    """docs/own_problem.md registers ``poisson1d_doc``, which sorts among the built-in names:
    the built-in halves must not shift (the recipe map's held-out half stays held out)."""
    from lightning_pinn import problems
    from lightning_pinn.problems import _registry

    before = benchmark.split_configs(problems.builtin_names())
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    problems.register("poisson1_mine", problems.Burgers, nu=0.5)  # sorts among built-ins
    problems.register("aaa_mine", problems.Burgers, nu=0.25)
    calib, held = benchmark.split_configs([*problems.builtin_names(), "poisson1_mine", "aaa_mine"])
    assert calib == [*before[0], "aaa_mine"] and held == [*before[1], "poisson1_mine"]


def test_adapter_choice_scores_a_variant_against_the_default():
    module = _script("adapter_choice")
    base = {
        ("a", "none"): 1.0,
        ("a", "reweight"): 0.5,
        ("a", "adapters"): 0.8,
        ("b", "none"): 0.1,
        ("b", "reweight"): 0.2,
        ("b", "adapters"): 0.4,
    }
    s = module.score(base, {"a": 0.2, "b": 1.6, "c": 1.0}, ["a", "b", "c"])
    assert s["configs"] == 2  # "c" has no map cells
    assert s["geo_mean_ratio"] == pytest.approx(1.0)  # 0.25x and 4x
    assert (s["beats_default"], s["within_tolerance_of_best_fixed"]) == (1, 1)
    assert s["default_within_tolerance"] == 0


def test_recipe_cells_take_each_problems_recipe_steps_and_key_its_digest():
    from lightning_pinn.run import load_recipe

    cells = benchmark.make_cells(["burgers", "wave"], ["none"], [0], None, None, recipe="default")
    by_problem = {c.problem: c for c in cells}
    for name, cell in by_problem.items():
        recipe = load_recipe(name)
        assert cell.steps == recipe.steps
        assert cell.probe_steps == min(1000, recipe.steps // 2)  # run's default probe
        assert cell.key.endswith(f"|recipe=default@{recipe.digest}")
    # steps given: they win over the recipe's
    short = benchmark.make_cells(["wave"], ["none"], [0], 40, None, recipe="default")[0]
    assert (short.steps, short.probe_steps) == (40, 20)
    with pytest.raises(ValueError, match="steps per cell, or a recipe"):
        benchmark.make_cells(["burgers"], ["none"], [0], None, None)
    with pytest.raises(ValueError, match="unknown recipe"):
        benchmark.make_cells(["burgers"], ["none"], [0], None, None, recipe="magic")


def test_a_recipe_cell_trains_the_recipe_under_the_cells_own_settings(tmp_path):
    from lightning_pinn.run import load_recipe

    cell = benchmark.make_cells(["wave"], ["surgery"], [1], 40, 10, recipe="default")[0]
    cfg = cell.run_config(str(tmp_path), 1, {"residual": 64})
    recipe = load_recipe("wave")
    assert (cfg.recipe, cfg.trunk, cfg.rule, cfg.lbfgs) == (
        "wave",
        recipe.trunk,
        recipe.rule,
        recipe.lbfgs,
    )
    assert (cfg.strategy, cfg.max_steps, cfg.probe_steps, cfg.seed) == ("surgery", 40, 10, 1)
    assert cfg.points == {"residual": 64}  # the test's tiny points win over the recipe's
    stale = dataclasses.replace(cell, recipe_digest="an-old-version")
    with pytest.raises(RuntimeError, match="changed since"):
        stale.run_config(str(tmp_path), 1, None)


def test_guarded_cells_run_auto_with_trials_and_only_they_take_trial_options(tmp_path):
    cells = benchmark.make_cells(
        ["burgers"],
        ["auto", "auto-guarded"],
        [0],
        200,
        50,
        run_options={"trial_score": "sum", "lr": 0.01},
    )
    auto, guarded = cells
    assert auto.key == "burgers|auto|0|200|50||lr=0.01"  # no trial options where they don't act
    assert guarded.key == "burgers|auto-guarded|0|200|50||lr=0.01,trial_score=sum"
    cfg = guarded.run_config(str(tmp_path), 1, None)
    assert (cfg.strategy, cfg.trial_steps, cfg.trial_score) == ("auto", 10, "sum")  # 5% of 200
    assert auto.run_config(str(tmp_path), 1, None).trial_steps is None
    given = benchmark.make_cells(
        ["burgers"], ["auto-guarded"], [0], 200, 50, run_options={"trial_steps": 7}
    )[0]
    assert given.run_config(str(tmp_path), 1, None).trial_steps == 7
    margin = benchmark.make_cells(
        ["burgers"], ["auto", "auto-guarded"], [0], 200, 50, run_options={"trial_margin": 0.2}
    )
    assert [c.key.endswith("trial_margin=0.2") for c in margin] == [False, True]
    assert margin[1].run_config(str(tmp_path), 1, None).trial_margin == 0.2


def test_escalate_cells_run_auto_with_escalation_and_fail_when_they_cannot(tmp_path):
    auto, escalate = benchmark.make_cells(["burgers"], ["auto", "auto-escalate"], [0], 200, 50)
    assert escalate.key == "burgers|auto-escalate|0|200|50|"
    cfg = escalate.run_config(str(tmp_path), 1, None)
    assert (cfg.strategy, cfg.escalate) == ("auto", True)
    assert auto.run_config(str(tmp_path), 1, None).escalate is False
    with pytest.raises(ValueError, match="no step for the escalation window"):
        benchmark.make_cells(["burgers"], ["auto-escalate"], [0], 100, 99)
    with pytest.raises(ValueError, match="no step for the escalation window"):
        # burgers' recipe starts L-BFGS after 80 of 100 steps
        benchmark.make_cells(["burgers"], ["auto-escalate"], [0], 100, 80, recipe="default")
    records = _records()
    records.append({"problem": "dir", "strategy": "auto-escalate", "seed": 0, "rel_l2": 0.11})
    assert benchmark.selection_accuracy(records)["escalated_run_accuracy"] == 1.0


def test_guarded_runs_are_scored_against_the_best_and_against_none():
    records = _records()
    # dir: best adapters 0.1, none 1.0; low: best none 0.1
    records.append({"problem": "dir", "strategy": "auto-guarded", "seed": 0, "rel_l2": 0.3})
    records.append({"problem": "low", "strategy": "auto-guarded", "seed": 0, "rel_l2": 0.12})
    result = benchmark.selection_accuracy(records)
    rows = {r["config"]: r for r in result["rows"]}
    assert rows["dir"]["guarded_hit"] is False and rows["low"]["guarded_hit"] is True
    assert result["guarded_run_accuracy"] == 0.5
    assert result["guarded_within_none"] == 1.0  # 0.3 <= 1.25 x 1.0 and 0.12 <= 1.25 x 0.1
    # geometric means over configurations where the strategy ran everywhere: not the guarded
    geo = result["geomean_rel_l2"]
    assert set(geo) == {"none", "reweight", "adapters"}
    assert geo["none"] == pytest.approx((1.0 * 1.0 * 0.1 * 0.1) ** 0.25)


def test_the_cosine_family_is_the_runtime_rule_with_a_cosine_margin():
    """Each grid point of rule_families' ``cosine`` family picks what ConflictCallback(
    tau_dir=0.5, tau_mag=m, tau_cos=c) would pick, on every stored probe of the map."""
    from pathlib import Path

    module = _script("rule_families")
    path = Path(__file__).parents[3] / "docs" / "data" / "recipe_map.jsonl"
    reports = [r["report"] for r in benchmark.load_results(path) if r.get("report")][:120]
    assert reports
    for c in (0.2, 0.6):
        for m in (0.25, 1.0):
            family = module._cosine(c, m)
            runtime = [benchmark.diagnose_report(rep, 0.5, m, tau_cos=c) for rep in reports]
            assert [family(rep) for rep in reports] == [d.strategy for d in runtime]


def test_alignment_and_after_reweight_rule_families():
    module = _script("rule_families")
    records = _records()
    # alignment low where adapters win (dir); conflict stays under reweighting only there
    for r in records:
        conflicted = r["problem"] == "dir"
        if r["strategy"] == "none":
            r["report"] = {**r["report"], "late_mean_alignment": -0.5 if conflicted else 0.5}
        if r["strategy"] == "reweight":
            r["report"] = _report(0.9 if conflicted else 0.1, 0.0, 0.0)
    augmented = module.with_reweighted_probes(records)
    probe = next(r for r in augmented if r["problem"] == "dir" and r["strategy"] == "none")
    assert probe["report"]["after_reweight"]["pairs"][0]["late_conflict_rate"] == 0.9
    assert "after_reweight" not in records[0].get("report", {})  # the input is not changed
    rows = {row["family"]: row for row in module.evaluate(records)}
    for family in ("alignment", "after-reweight"):
        assert rows[family]["calibration"] == 1.0
        assert rows[family]["held_out"] == 1.0  # miss: conflict goes away under reweighting


def test_trial_scores_rank_candidates_from_their_held_out_losses():
    module = _script("trial_scores")
    assert module.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert module.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert module.spearman([1, 1], [1, 2]) is None
    records = _records()
    # In every configuration the residual-led score picks the candidate with the lowest
    # final error; geomean and sum are misled by a large drop of the second loss.
    for config, seed in {(r["problem"], r["seed"]) for r in records}:
        best = min(
            ("none", "reweight"),
            key=lambda s: next(
                r["rel_l2"]
                for r in records
                if (r["problem"], r["strategy"], r["seed"]) == (config, s, seed)
            ),
        )
        worst = "reweight" if best == "none" else "none"
        records.append(
            {
                "problem": config,
                "strategy": "auto-guarded",
                "seed": seed,
                "rel_l2": 1.0,
                "report": {
                    "trial": [
                        {"candidate": best, "losses": {"r": 0.1, "b": 1.0}},
                        {"candidate": worst, "losses": {"r": 0.5, "b": 0.01}},
                    ]
                },
            }
        )
    result = module.evaluate(records)
    for half in ("calibration", "held_out"):
        assert result["residual"][half]["pick"] == 1.0
        assert result["residual"][half]["spearman"] == pytest.approx(1.0)
        assert result["geomean"][half]["pick"] < 1.0 and result["sum"][half]["pick"] < 1.0
        assert result["residual"][half]["n"] == 6  # two configurations x three seeds
        # each strategy keeps its order over the seeds (x0.5, x1, x3), so the ranking by the
        # seed-averaged error is the same seed's
        assert result["residual"][half]["spearman_avg"] == pytest.approx(1.0)
        assert result["residual"][half]["n_avg"] == 6
    one_seed = [r for r in records if r["seed"] == 0]
    assert module.evaluate(one_seed)["residual"]["calibration"]["n_avg"] == 0


def test_recipe_map_script_halves_are_the_registrys_split():
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).parents[3] / "benchmarks" / "recipe_map.sh").read_text()
    halves = {
        name: sorted(re.search(rf'^{name}="([^"]*)"', text, re.M).group(1).split())
        for name in ("CALIBRATION", "HELD_OUT")
    }
    # the built-in registry in a fresh interpreter: problems other tests register would shift
    # the alternation
    code = (
        "import json; from lightning_pinn import problems; "
        "from lightning_pinn.benchmark import split_configs; "
        "print(json.dumps([sorted(h) for h in split_configs(problems.names())]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    calib, held = json.loads(out.stdout.strip().splitlines()[-1])
    assert halves == {"CALIBRATION": calib, "HELD_OUT": held}


def test_guarded_cells_that_cannot_run_their_trials_fail_when_made():
    with pytest.raises(ValueError, match="no step after the probe"):
        benchmark.make_cells(["burgers"], ["auto-guarded"], [0], 100, 90)
    benchmark.make_cells(["burgers"], ["none"], [0], 100, 90)  # no guarded cell: fine
    with pytest.raises(ValueError, match="L-BFGS phase starts at step 72"):
        # burgers' recipe switches to L-BFGS at 80% of the 90 steps two losing trials of 5
        # leave: 78 + 5 runs past it
        benchmark.make_cells(
            ["burgers"],
            ["auto-guarded"],
            [0],
            100,
            78,
            run_options={"trial_steps": 5},
            recipe="default",
        )


def test_recipe_vs_before_compares_the_recipes_own_strategy_with_the_best_before():
    from lightning_pinn.run import load_recipe

    module = _script("recipe_vs_before")

    def rec(problem, strategy, value, seed=0, steps=2000):
        return {
            "problem": problem,
            "strategy": strategy,
            "rel_l2": value,
            "seed": seed,
            "max_steps": steps,
        }

    before = module.best_before(
        [
            [rec("helmholtz", "none", v, s) for s, v in enumerate((0.3, 0.2, 0.1))]
            + [rec("helmholtz", "reweight", 0.05)],
            [rec("helmholtz", "auto", 0.01, steps=20000)],
        ]
    )
    assert before["helmholtz"] == (0.01, "auto, 20000 steps (file 2)")
    accuracy_record = {  # an accuracy.py record of the current helmholtz recipe
        "problem": "helmholtz",
        "rel_l2": 0.002,
        "recipe": "default",
        "budget_scale": 1.0,
        "recipe_digest": load_recipe("helmholtz").digest,
    }
    stale = {**accuracy_record, "recipe_digest": "old", "rel_l2": 9.0}
    mapped = [rec("helmholtz", "reweight", 0.004), rec("helmholtz", "none", 0.0001)]
    # helmholtz's recipe trains with reweight: `none` is not its own strategy
    now = module.recipe_medians([*mapped, accuracy_record, stale])
    assert now["helmholtz"] == (0.003, "reweight", 2)
    # a variant of the recipe's strategy (a re-probing cell) is not the recipe's own run
    variant = {**rec("helmholtz", "reweight", 5.0), "run_options": {"reprobe_every": 500}}
    assert module.recipe_medians([*mapped, accuracy_record, variant]) == now
    (row,) = module.rows(now, before)
    assert row[0] == "helmholtz" and row[-1] == "0.30"


def test_analysis_of_a_map_with_an_empty_held_out_half_prints_na(tmp_path, capsys):
    from lightning_pinn.cli import main

    records = [r for r in _records() if r["problem"] == "dir"]  # one configuration so far
    records.append({"problem": "dir", "strategy": "auto-guarded", "seed": 0, "rel_l2": 0.1})
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    assert main(["benchmark", "--analyze-only", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "held-out half n/a" in out and "auto-guarded runs within 1.25x" in out
    module = _script("rule_families")
    module.main([str(tmp_path / "results.jsonl")])
    assert "| n/a |" in capsys.readouterr().out


def _guarded_case(report):
    """One configuration where ``reweight`` (0.1) beats ``none`` (1.0), and a guarded record
    with the given report."""
    records = [
        {"problem": "c", "strategy": s, "seed": 0, "rel_l2": e}
        for s, e in (("none", 1.0), ("reweight", 0.1))
    ]
    records.append(
        {"problem": "c", "strategy": "auto-guarded", "seed": 0, "rel_l2": 0.1, "report": report}
    )
    return records


def test_trial_margin_replay_keeps_the_first_ranked_unless_clearly_beaten():
    module = _script("trial_scores")
    assert module.pick_with_margin([1.0, 0.9], 0.0) == 1
    assert module.pick_with_margin([1.0, 0.9], 0.2) == 0  # 0.9 * 1.2 >= 1.0: not beaten
    assert module.pick_with_margin([1.0, 0.5], 0.2) == 1
    assert module.pick_with_margin([1.0, 0.5], math.inf) == 0
    # The trial table's rows may be stored in any order: the rank says which came first.
    records = _guarded_case(
        {
            "trial": [
                {"candidate": "none", "rank": 2, "losses": {"r": 0.9}},
                {"candidate": "reweight", "rank": 1, "losses": {"r": 1.0}},
            ]
        }
    )
    result = module.evaluate_margins(records)
    half = next(h for h in ("calibration", "held_out") if result["residual", 0.0][h]["n"])
    assert result["residual", 0.0][half]["pick"] == 0.0  # short-term score picks none
    assert result["residual", 0.2][half]["pick"] == 1.0  # the margin keeps reweight
    assert result["residual", 0.2][half]["geomean_error"] == pytest.approx(0.1)


def test_anchored_replay_keeps_the_anchor_unless_beaten_by_the_margin():
    module = _script("trial_anchor")
    records = _guarded_case(
        {
            "trial": [
                {"candidate": "none", "rank": 1, "losses": {"r": 0.9}},
                {"candidate": "reweight", "rank": 2, "losses": {"r": 1.0}},
            ]
        }
    )
    cases = module.ts.cases(records)
    for margin, pick, error in ((0.0, 0.0, 1.0), (0.2, 1.0, 0.1)):
        result = module.anchored(cases, "reweight", margin)
        half = next(h for h in ("calibration", "held_out") if result[h]["n"])
        assert result[half]["pick"] == pick
        assert result[half]["geomean_error"] == pytest.approx(error)
    # an anchor that was not tried falls back to the diagnosis's first-ranked candidate
    result = module.anchored(cases, "adapters", math.inf)
    half = next(h for h in ("calibration", "held_out") if result[h]["n"])
    assert result[half]["geomean_error"] == pytest.approx(1.0)


def test_shorter_trials_are_replayed_from_the_losses_during_the_trials():
    module = _script("trial_scores")
    # Half-way, none is ahead (the switch's transient); at the end reweight is.
    records = _guarded_case(
        {
            "trial_steps": 4,
            "trial": [
                {
                    "candidate": "reweight",
                    "rank": 1,
                    "losses": {"r": 0.5},
                    "during": [{"steps": 2, "losses": {"r": 1.0}}],
                },
                {
                    "candidate": "none",
                    "rank": 2,
                    "losses": {"r": 0.8},
                    "during": [{"steps": 2, "losses": {"r": 0.9}}],
                },
            ],
        }
    )
    result = module.evaluate_lengths(records)
    half = next(h for h in ("calibration", "held_out") if result[1.0][h]["n"])
    assert result[1.0][half]["pick"] == 1.0 and result[0.5][half]["pick"] == 0.0
    assert result[0.25][half]["n"] == 0  # not recorded: not counted
    records[-1]["report"]["trial"][1]["during"] = []  # like with like: all rows or none
    assert module.evaluate_lengths(records)[1.0][half]["n"] == 0


def test_the_recipe_map_rule_is_the_rule_chosen_on_the_calibration_half():
    """RULES["recipe-map"] is what rule_families chooses across the families on the committed
    map's calibration half (held-out records removed: they must not move the choice), and at
    run time it picks what that family's rule picks on every stored probe."""
    from pathlib import Path

    from lightning_pinn.diagnostics import RULES

    module = _script("rule_families")
    path = Path(__file__).parents[3] / "docs" / "data" / "recipe_map.jsonl"
    records = benchmark.current_records(benchmark.load_results(path))
    configs = {r["config"] for r in benchmark.selection_accuracy(records)["rows"]}
    calib, _ = benchmark.split_configs(sorted(configs))
    records = [r for r in records if r["problem"] in calib]
    winner = module.chosen_rule(module.evaluate(records))
    rule = RULES["recipe-map"]
    assert (winner["family"], winner["chosen"]) == (
        "cosine",
        f"c={rule['tau_cos']}, tau_mag={rule['tau_mag']}",
    )
    assert rule["tau_dir"] == 0.5  # the cosine family's persistence threshold
    family = module._cosine(rule["tau_cos"], rule["tau_mag"])
    reports = [r["report"] for r in records if r.get("report")]
    assert [family(rep) for rep in reports] == [
        benchmark.diagnose_report(rep, **rule).strategy for rep in reports
    ]


def test_auto_cells_take_the_rule_option_and_default_to_the_recorded_rule(tmp_path):
    cells = benchmark.make_cells(
        ["burgers"],
        ["none", "auto", "auto-guarded"],
        [0],
        200,
        50,
        run_options={"regime_rule": "recipe-map"},
    )
    assert [c.key.endswith("regime_rule=recipe-map") for c in cells] == [False, True, True]
    assert cells[1].run_config(str(tmp_path), 1, None).thresholds["tau_cos"] == 0.6
    plain = benchmark.make_cells(["burgers"], ["auto"], [0], 200, 50)[0]
    assert plain.key == "burgers|auto|0|200|50|"  # recorded auto cells keep their keys
    cfg = plain.run_config(str(tmp_path), 1, None)
    assert cfg.regime_rule == benchmark.CELL_RULE == "design"
    with pytest.raises(ValueError, match="unknown run options"):
        benchmark.make_cells(["burgers"], ["auto"], [0], 200, 50, run_options={"rules": "x"})
    from lightning_pinn.cli import build_parser

    args = build_parser().parse_args(["benchmark", "--regime-rule", "recipe-map"])
    assert args.regime_rule == "recipe-map"


def test_targets16_scores_every_named_rule_and_the_guarded_runs_per_half(capsys):
    module = _script("targets16")
    records = _records()
    # "dir": the guarded run lands at 2x the best (a miss) but below none; "low": a hit
    records.append({"problem": "dir", "strategy": "auto-guarded", "seed": 0, "rel_l2": 0.2})
    records.append({"problem": "low", "strategy": "auto-guarded", "seed": 0, "rel_l2": 0.1})
    s = module.half_summary(records, ["dir", "low", "mag", "miss"])
    # design: dir -> adapters, mag -> reweight, low -> none, miss -> adapters (a miss)
    assert s["accuracy"]["design"] == 0.75
    # recipe-map: dir's mean cosine -0.4 is not below -0.6 and its 0.2 decades are below
    # 0.25, so none (a miss); miss -> none (a hit)
    assert s["picks"]["recipe-map"] == {
        "dir": "none",
        "low": "reweight",
        "mag": "reweight",
        "miss": "none",
    }
    assert (s["guarded_hits"], s["guarded_within_none"], s["n_guarded"]) == (1, 2, 2)
    assert s["geomean_configs"] == 0  # no configuration ran every strategy
    # every auto mode is scored on the configurations where it ran
    records.append({"problem": "dir", "strategy": "auto-escalate", "seed": 0, "rel_l2": 0.1})
    records.append({"problem": "mag", "strategy": "auto-escalate", "seed": 0, "rel_l2": 0.9})
    records.append({"problem": "dir", "strategy": "surgery", "seed": 0, "rel_l2": 0.4})
    esc = module.half_summary(records, ["dir", "low", "mag", "miss"])["modes"]["auto-escalate"]
    # dir: 0.1 = the best (adapters); mag: 0.9 > 1.25 x 0.2 but <= 1.25 x none's 1.0
    assert (esc["n"], esc["hits"], esc["within_none"]) == (2, 1, 2)
    # only dir ran every constant strategy: there the best constant is adapters (0.1)
    assert (esc["geomean_configs"], esc["best_constant"]) == (1, "adapters")
    assert esc["geomean"] == pytest.approx(0.1) == esc["best_constant_geomean"]
    assert module.half_summary(records, ["low"])["modes"]["auto-escalate"]["n"] == 0
    module.main(["/dev/null"])  # an empty map prints the headers and n/a, no error
    assert "n/a" in capsys.readouterr().out


def test_targets16_robustness_counts_how_badly_each_strategy_loses_per_run():
    module = _script("targets16")
    records = _records()
    records.append({"problem": "dir", "strategy": "auto", "seed": 0, "rel_l2": 0.2})
    rob = module.robustness(records, ["dir", "low", "mag", "miss"])
    # reweight over the best, per configuration (the same on every seed): dir 9x, mag 1x,
    # low 1.1x, miss 5x; four configurations x three seeds
    r = rob["reweight"]
    assert (r["n"], r["within_1.25"], r["within_3"], r["within_10"]) == (12, 6, 6, 12)
    assert r["worst"] == pytest.approx(9.0) and r["worst_at"].startswith("dir seed")
    assert rob["auto"]["n"] == 1 and rob["auto"]["worst"] == pytest.approx(4.0)  # 0.2 / 0.05
    assert "auto-guarded" not in rob  # no run, no row
    assert module.robustness(records, ["other"]) == {}


def test_targets16_seed_filter_reads_one_seed_as_a_replicate(tmp_path, capsys):
    import json

    module = _script("targets16")
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    module.main([str(path)])  # medians over seeds 0-2: seed 1's values
    assert "| dir | 1 | 0.9 | 0.1 |" in capsys.readouterr().out
    module.main([str(path), "--seed", "0"])  # seed 0 alone: half the values
    out = capsys.readouterr().out
    assert "| dir | 0.5 | 0.45 | 0.05 |" in out and "| dir | 1 |" not in out
    module.main([str(path), "--seed", "0", "--seed", "2"])  # median of 0.5x and 3x
    assert "| dir | 1.75 | 1.58 | 0.175 |" in capsys.readouterr().out


def test_trial_scores_separate_the_choice_from_the_training_after_it():
    module = _script("trial_scores")
    records = _records()
    for r in records:
        if r["strategy"] == "none":  # auto switched to adapters on "dir", kept none elsewhere
            auto = {**r, "strategy": "auto", "key": r["key"] + "|auto"}
            auto["final_strategy"] = "adapters" if r["problem"] == "dir" else "none"
            auto["rel_l2"] = 2.0 * r["rel_l2"]
            records.append(auto)
    # seed 0 guarded runs: dir keeps adapters at 2x its fixed run, mag keeps reweight at 0.5x
    records.append(
        {
            "problem": "dir",
            "strategy": "auto-guarded",
            "seed": 0,
            "final_strategy": "adapters",
            "rel_l2": 2 * 0.05,
        }
    )
    records.append(
        {
            "problem": "mag",
            "strategy": "auto-guarded",
            "seed": 0,
            "final_strategy": "reweight",
            "rel_l2": 0.5 * 0.1,
        }
    )
    out = module.choice_vs_training(records)
    # halves of the four test names: dir, mag calibration; low, miss held out
    cal = out["calibration"]
    assert (cal["n_fixed"], cal["n_auto"]) == (2, 1)
    assert cal["fixed"] == pytest.approx(1.0)  # sqrt(2 x 0.5)
    # dir's auto (seed 0) is 2 x none's 0.5 = 1.0 and ended on adapters: 0.1 / 1.0
    assert cal["auto"] == pytest.approx(0.1)
    assert out["held_out"] == {"n_fixed": 0, "fixed": None, "n_auto": 0, "auto": None}


def test_noise_floor_scores_replicates_and_per_configuration_ceilings(capsys):
    module = _script("noise_floor")
    rows = {
        0: {"none": 1.0, "reweight": 0.5, "adapters": 0.9, "auto-guarded": 0.6},
        1: {"none": 1.0, "reweight": 2.0, "adapters": 0.95},
    }
    records = [
        {"problem": "a", "strategy": s, "seed": seed, "rel_l2": v}
        for seed, row in rows.items()
        for s, v in row.items()
    ]
    records.append({"problem": "b", "strategy": "none", "seed": 0, "rel_l2": 1.0})  # one seed
    assert module._finals([{**records[0], "strategy": "auto", "final_strategy": "none"}]) == {
        ("a", 0, "auto"): "none"
    }
    configs = module._replicated(module._table(records))
    assert list(configs) == ["a"]  # b has neither every strategy nor two seeds
    s = module.summarise(configs)
    # none agrees with itself, reweight spreads 4x, adapters 0.9 vs 0.95
    assert s["agree"] == {"none": (1, 1), "reweight": (0, 1), "adapters": (1, 1)}
    # adapters has the best geometric mean; it misses seed 0 (0.9 > 1.25 x 0.5) and hits
    # seed 1. Left out, seed 1 picks adapters for seed 0 (a miss) and seed 0 picks reweight for
    # seed 1 (2.0 > 1.25 x 0.95, a miss).
    assert (s["oracle"], s["loo"], s["cells"]) == (1, 0, 2)
    assert s["modes"]["auto-guarded"] == (1, 1)  # 0.6 <= 1.25 x 0.5
    # its choice against the seed-averaged map: adapters (geomean 0.925) is the best; a run
    # that ended on reweight (geomean 1.0 <= 1.25 x 0.925) is a hit, on none too (1.0)
    finals = {("a", 0, "auto-guarded"): "adapters", ("a", 1, "auto"): "reweight"}
    choices = module.summarise(configs, finals)["choices"]
    assert choices["auto-guarded"] == (1, 1) and choices["auto"] == (1, 1)
    finals[("a", 0, "auto")] = "surgery"  # not a compared strategy: not scored
    assert module.summarise(configs, finals)["choices"]["auto"] == (1, 1)
    sd = module.seed_sd(configs)
    assert sd["none"] == 0.0 and sd["reweight"] == pytest.approx(math.sqrt(2) * math.log10(2))
    assert module.seed_sd(configs, robust=True)["reweight"] == pytest.approx(sd["reweight"])
    # without noise the oracle's pick is always the best
    assert module.oracle_ceiling(configs, dict.fromkeys(sd, 0.0)) == 1.0
    # with noise far above the gaps it is not
    assert module.oracle_ceiling(configs, dict.fromkeys(sd, 3.0), draws=2000) < 0.9
    # resampled residuals: none's are 0; reweight's are +-log10(2) * sqrt(2)
    res = module.residuals(configs)
    assert list(res["none"]) == [0.0, 0.0]
    assert sorted(res["reweight"]) == pytest.approx([-sd["reweight"], sd["reweight"]])
    assert module.oracle_ceiling(configs, {s: res[s] * 0 for s in res}) == 1.0
    # an oracle with runs of its own: without noise it still meets the best; with noise the
    # best of three fixed medians is a lower bar than its own one more run
    assert module.oracle_ceiling(configs, dict.fromkeys(sd, 0.0), own_run=True) == 1.0
    noisy = dict.fromkeys(sd, 0.3)
    own = module.oracle_ceiling(configs, noisy, seeds=1, own_run=True)
    assert own < module.oracle_ceiling(configs, noisy, seeds=1)
    assert 0 < module.oracle_ceiling(configs, res, seeds=1, draws=2000) < 1
    module.main(["/dev/null"])  # an empty map prints its headers, no error
    assert "in-sample oracle" in capsys.readouterr().out


def test_reprobe_every_reaches_only_the_auto_cells_and_their_keys(tmp_path):
    from lightning_pinn.cli import build_parser

    cells = benchmark.make_cells(
        ["burgers"], ["none", "auto", "auto-guarded"], [0], 200, 50,
        run_options={"reprobe_every": 40},
    )  # fmt: skip
    none, auto, guarded = cells
    assert none.key == "burgers|none|0|200|50|"  # a fixed strategy keeps its key
    assert auto.key == "burgers|auto|0|200|50||reprobe_every=40"
    assert auto.run_config(str(tmp_path), 1, None).reprobe_every == 40
    assert guarded.run_config(str(tmp_path), 1, None).reprobe_every == 40
    assert none.run_config(str(tmp_path), 1, None).reprobe_every is None
    args = build_parser().parse_args(["benchmark", "--reprobe-every", "40"])
    assert args.reprobe_every == 40


def test_a_variant_of_auto_gets_its_own_column_and_leaves_plain_auto_alone(tmp_path):
    # One results file with plain `auto` cells and `auto` cells re-probing: grouping by the
    # strategy alone pooled them into one median (here 0.55 instead of 0.12).
    records = _records()
    for config, plain, variant in (("dir", 0.12, 1.0), ("mag", 0.5, 0.21)):
        records.append(
            {"problem": config, "strategy": "auto", "seed": 0, "rel_l2": plain, "key": config}
        )
        records.append(
            {
                "problem": config,
                "strategy": "auto",
                "seed": 0,
                "rel_l2": variant,
                "key": config + "|reprobe",
                "run_options": {"reprobe_every": 500},
            }
        )
    # a shared setting of the whole call (the lr schedule) does not split a column
    records[0]["run_options"] = {"lr_decay_rate": 0.9}
    assert benchmark.column(records[0]) == records[0]["strategy"]
    assert benchmark.column(records[-1]) == "auto[reprobe_every=500]"
    assert (
        benchmark.column({"strategy": "auto-guarded", "run_options": {"trial_margin": 0.2}})
        == "auto-guarded[trial_margin=0.2]"
    )
    result = benchmark.selection_accuracy(records)
    rows = {r["config"]: r for r in result["rows"]}
    assert rows["dir"]["auto_median"] == pytest.approx(0.12)
    assert rows["dir"]["all_medians"]["auto[reprobe_every=500]"] == pytest.approx(1.0)
    assert result["auto_run_accuracy"] == 0.5  # the plain cells alone: dir hit, mag missed
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    benchmark.analyze(tmp_path)
    head, _, dir_row = (tmp_path / "table.md").read_text().splitlines()[:3]
    assert head.split(" | ")[-4:-3] == ["auto[reprobe_every=500]"]
    assert "| 0.12 | 1 |" in dir_row


def test_targets16_reports_a_variant_against_plain_auto_on_the_same_configurations():
    targets = _script("targets16")
    records = _records()
    for config in ("dir", "mag", "low", "miss"):
        records.append(
            {"problem": config, "strategy": "auto", "seed": 0, "rel_l2": 0.3, "key": config}
        )
    records.append(
        {
            "problem": "dir",
            "strategy": "auto",
            "seed": 0,
            "rel_l2": 0.1,
            "key": "dir|reprobe",
            "run_options": {"reprobe_every": 500},
        }
    )
    rows = benchmark.selection_accuracy(records)["rows"]
    plain = targets.mode_targets(rows, "auto")
    variant = targets.mode_targets(rows, "auto[reprobe_every=500]")
    assert plain["n"] == 4 and plain["base"] is None
    assert variant["n"] == 1 and variant["base"] == "auto" and variant["paired"] == 1
    assert variant["hits"] == 1 and variant["base_hits"] == 0  # dir's best is 0.1 (adapters)
    assert variant["paired_geomeans"] == pytest.approx((0.1, 0.3))
    rob = targets.robustness(records, ["dir"])
    assert rob["auto"]["worst"] == pytest.approx(0.3 / 0.05)  # seed 0 of dir: best 0.05
    assert rob["auto[reprobe_every=500]"]["worst"] == pytest.approx(0.1 / 0.05)


def test_ablation_table_pairs_each_variant_run_by_run_with_the_map(tmp_path, capsys):
    module = _script("ablation_table")

    def rec(problem, strategy, seed, rel):
        return {"problem": problem, "strategy": strategy, "seed": seed, "rel_l2": rel}

    map_file, variant_file = tmp_path / "map.jsonl", tmp_path / "v.jsonl"
    map_records = [
        rec("a", "adapters", 0, 1.0),
        rec("a", "adapters", 1, 2.0),
        rec("b", "adapters", 0, 1.0),
        rec("a", "reweight", 0, 0.5),
        rec("a", "none", 0, 3.0),
    ]
    # "a" seed 0: 4x better than adapters; seed 1: 4x worse (cancels); "b" seed 0: 2x
    # better; "b" seed 2 has no map cell and is left out of the pairs
    variant = [rec("a", "adapters", 0, 0.25), rec("a", "adapters", 1, 8.0)]
    variant += [rec("b", "adapters", 0, 0.5), rec("b", "adapters", 2, 0.1)]
    map_file.write_text("".join(json.dumps(r) + "\n" for r in map_records))
    variant_file.write_text("".join(json.dumps(r) + "\n" for r in variant))
    module.main([str(map_file), f"v={variant_file}"])
    out = capsys.readouterr().out
    assert "| v | adapters | 3 | 0,1 | 0.794 | 2 of 3 |" in out  # (1/4 * 4 * 1/2)^(1/3)
    assert "| v | reweight | 1 | 0 | 0.500 | 1 of 1 |" in out
    assert "| v | none | 1 | 0 | 0.083 | 1 of 1 |" in out
    module.main([str(map_file), f"v={variant_file}", "--seed", "1"])
    assert "| v | adapters | 1 | 1 | 4.000 | 0 of 1 |" in capsys.readouterr().out
    # one strategy of a file as the variant: the map's own adapters against its reweight
    module.main([str(map_file), f"d={map_file}:adapters"])
    assert "| d | reweight | 1 | 0 | 2.000 | 0 of 1 |" in capsys.readouterr().out


def test_ablation_table_keeps_one_half_of_the_registrys_split(tmp_path, capsys):
    module = _script("ablation_table")
    calibration, held_out = benchmark.split_configs(["burgers", "wave"])
    assert calibration == ["wave"] and held_out == ["burgers"]
    rows = [
        {"problem": p, "strategy": s, "seed": 0, "rel_l2": v}
        for p in ("burgers", "wave")
        for s, v in (("adapters", 1.0), ("reweight", 2.0))
    ]
    path = tmp_path / "map.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    module.main([str(path), f"d={path}:reweight", "--half", "held-out"])
    out = capsys.readouterr().out
    assert "| burgers |" in out and "| wave |" not in out
    assert "| d | adapters | 1 | 0 | 2.000 | 0 of 1 |" in out
    with pytest.raises(SystemExit, match="--half must be"):
        module.main([str(path), "--half", "both"])
