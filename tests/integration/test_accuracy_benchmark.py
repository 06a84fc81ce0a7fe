"""benchmarks/accuracy.py keeps running: one tiny cell, a record per line, a re-run that skips
it, and a table that parses."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy.py"
ROW = re.compile(
    r"^\| ([^|]+) \| (\S+) \| (\d+) \| (\d+|-) \| (\d+) \| ([\d,]+) \| ([^|]+) \| ([^|]+) \|$"
)


@pytest.fixture(scope="module")
def accuracy():
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look the module up there
    spec.loader.exec_module(module)
    return module


def test_one_tiny_cell_is_recorded_skipped_and_tabled(accuracy, tmp_path, capsys):
    out = tmp_path / "accuracy.jsonl"
    argv = [
        "--problems", "burgers", "--seeds", "0", "--budget-scale", "0.02", "--out", str(out),
        "--points", "residual=64,initial=16,boundary=16",
    ]  # fmt: skip
    assert accuracy.main(argv) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (record["row"], record["seed"], record["max_steps"], record["threads"]) == (
        "burgers", 0, 20, 1,
    )  # fmt: skip
    assert record["recipe_file"] == "burgers" and record["steps"] == 20
    assert 0 < record["cpu_time_s"] < 600  # one thread's CPU seconds, immune to contention
    assert record["recipe_digest"] == accuracy.recipe_digest("burgers")
    stale = {**record, "recipe_digest": "an-old-recipe", "rel_l2": 123.0}
    with out.open("a") as f:  # a record of an earlier recipe version: history, not tabled
        f.write(json.dumps(stale) + "\n")
    capsys.readouterr()
    assert accuracy.main(argv) == 0  # the finished cell is skipped
    text = capsys.readouterr().out
    assert "0 cell(s) to run, 1 already" in text
    assert len(out.read_text().splitlines()) == 2
    rows = {m[1]: m for m in (ROW.match(line) for line in text.splitlines()) if m}
    assert set(rows) == {"burgers"}
    assert float(rows["burgers"][2]) == pytest.approx(record["rel_l2"], rel=1e-2)
    assert rows["burgers"][4] == str(round(record["cpu_time_s"]))
    assert rows["burgers"][5] == "20" and rows["burgers"][7] == "6.7e-4"
    assert "| allen_cahn | not run |" in text and "5.37e-5" in text


def test_unknown_row_is_refused(accuracy, capsys):
    with pytest.raises(SystemExit):
        accuracy.main(["--problems", "burgerz"])
    assert "unknown row(s) ['burgerz']" in capsys.readouterr().err
