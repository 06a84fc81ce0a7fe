"""Which benchmark records count: only those of each recipe's current version."""

from __future__ import annotations

import json

import pytest

from lightning_pinn.benchmark import current_records, load_results
from lightning_pinn.benchmark._cells import _drop_cut_record
from lightning_pinn.run import load_recipe


def test_records_of_an_earlier_recipe_version_no_longer_count(tmp_path):
    digest = load_recipe("convection-b20", "convection").digest
    current = {"problem": "convection-b20", "recipe": "convection", "recipe_digest": digest}
    stale = {**current, "recipe_digest": "000000000000"}
    no_recipe = {"problem": "burgers", "strategy": "none"}
    gone = {"problem": "burgers", "recipe": str(tmp_path / "gone.yaml"), "recipe_digest": "abc"}
    default = load_recipe("thermal_flow", "default").digest
    lookup = {"problem": "thermal_flow", "recipe": "default", "recipe_digest": default}
    records = [current, stale, no_recipe, gone, lookup, {**lookup, "recipe_digest": "x"}]
    assert current_records(records) == [current, no_recipe, gone, lookup]


def test_a_changed_recipe_drops_its_cells_from_the_tables(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("steps: 10\nlr: 1.0e-3\n")
    made = {"problem": "burgers", "recipe": str(recipe), "recipe_digest": ""}
    made["recipe_digest"] = load_recipe("burgers", str(recipe)).digest
    assert current_records([made]) == [made]
    recipe.write_text("steps: 20\nlr: 1.0e-3\n")
    assert current_records([made]) == []
    recipe.write_text("# a comment changes nothing\nsteps: 10\nlr: 1.0e-3\n")
    assert current_records([made]) == [made]


def test_a_problem_that_gains_its_own_recipe_file_keeps_its_unchanged_cells():
    # convection-b1 once resolved `default` to the family's convection.yaml; it now has its own
    # file with the same settings, while convection.yaml (beta = 30) changed
    b1 = load_recipe("convection-b1", "default")
    assert b1.name == "convection-b1" and b1.digest != load_recipe("convection").digest
    made = {
        "problem": "convection-b1",
        "recipe": "convection",  # the file the cell resolved to when it ran
        "recipe_digest": b1.digest,
        "key": f"convection-b1|none|0|4000|1000||recipe=default@{b1.digest}",
    }
    changed = {**made, "recipe_digest": "000000000000", "key": "x|recipe=default@000000000000"}
    assert current_records([made, changed]) == [made]


def test_a_recipe_that_only_changes_its_strategy_keeps_the_cells_not_the_accuracy_runs(tmp_path):
    """A benchmark cell sets its own strategy, so the recipe's recommended strategy never
    reached it; a record of benchmarks/accuracy.py trained with it, so it goes stale."""
    from lightning_pinn.benchmark import make_cells, run_benchmark

    path = tmp_path / "mine.yaml"
    path.write_text("steps: 4\nlr: 1.0e-3\nstrategy: auto\n")
    cell = make_cells(["poisson_nd-d2"], ["none"], [0], None, 2, recipe=str(path))[0]
    old = cell.recipe_digest
    made = {"problem": "poisson_nd-d2", "recipe": str(path), "recipe_digest": old, "key": cell.key}
    accuracy = {"problem": "poisson_nd-d2", "recipe": str(path), "recipe_digest": old}
    path.write_text("steps: 4\nlr: 1.0e-3\nstrategy: reweight\n")
    assert load_recipe("poisson_nd-d2", str(path)).digest != old
    assert current_records([made, accuracy]) == [made]
    path.write_text("steps: 4\nlr: 2.0e-3\nstrategy: reweight\n")  # a setting the cell used
    assert current_records([made, accuracy]) == []

    # and the benchmark does not run the cell again: its record still stands
    path.write_text("steps: 4\nlr: 1.0e-3\nstrategy: reweight\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.jsonl").write_text(json.dumps(made) + "\n")
    again = make_cells(["poisson_nd-d2"], ["none"], [0], None, 2, recipe=str(path))[0]
    assert again.key != cell.key
    records = run_benchmark([again], tmp_path / "out", jobs=1, progress=False)
    assert records == [made]


def test_a_record_cut_short_by_a_kill_is_skipped_and_cut_before_the_next_append(tmp_path, caplog):
    """Before: json.loads failed on the partial last line, so a killed benchmark could not be
    resumed, and an append would have joined the next record onto the partial one."""
    path = tmp_path / "results.jsonl"
    whole = json.dumps({"key": "a", "rel_l2": 0.1})
    path.write_text(whole + "\n" + '{"key": "b", "rel_')
    assert load_results(path) == [{"key": "a", "rel_l2": 0.1}]
    assert "cut short" in caplog.text
    _drop_cut_record(path)
    assert path.read_text() == whole + "\n"
    with path.open("a") as sink:
        sink.write(json.dumps({"key": "b", "rel_l2": 0.2}) + "\n")
    assert [r["key"] for r in load_results(path)] == ["a", "b"]
    # a bad line elsewhere is corruption, not an interrupted write: it is named
    path.write_text("not json\n" + whole + "\n")
    with pytest.raises(ValueError, match=r"results.jsonl, line 1, is not a JSON record"):
        load_results(path)
