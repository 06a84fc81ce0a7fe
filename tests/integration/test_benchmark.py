"""The quick suite end to end with a tiny budget, and resume skipping finished cells."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lightning_pinn import benchmark
from lightning_pinn.cli import main


@pytest.mark.slow
def test_quick_suite_runs_parses_and_resumes(tmp_path, capsys):
    argv = [
        "benchmark",
        "--suite",
        "quick",
        "--problems",
        "burgers",
        "heat_inverse",
        "--steps",
        "30",
        "--probe-steps",
        "15",
        "--points",
        "residual=64",
        "--jobs",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    records = benchmark.load_results(tmp_path / "results.jsonl")
    assert len(records) == 2 * len(benchmark.suite("quick")["strategies"])
    for r in records:
        assert r["rel_l2"] > 0 and r["loss_curve"] and r["wall_time_s"] > 0
        if r["strategy"] in ("none", "auto"):
            assert r["report"]["probe_steps"] == 15
    inverse = [r for r in records if r["problem"] == "heat_inverse"]
    assert all(r["coefficients"] for r in inverse)
    assert "| burgers |" in (tmp_path / "table.md").read_text()
    json.loads((tmp_path / "selection.json").read_text())
    assert (tmp_path / "regime_map.png").exists()
    out = capsys.readouterr().out
    assert "selection accuracy" in out
    # Re-running skips every finished cell: the file does not grow.
    assert main(argv) == 0
    assert len(benchmark.load_results(tmp_path / "results.jsonl")) == len(records)


def test_a_cell_runs_with_a_learning_rate_schedule(tmp_path):
    argv = [
        "benchmark",
        "--problems",
        "burgers",
        "--strategies",
        "none",
        "--seeds",
        "0",
        "--steps",
        "20",
        "--probe-steps",
        "10",
        "--points",
        "residual=64",
        "--lr",
        "0.01",
        "--lr-decay-rate",
        "0.5",
        "--lr-decay-steps",
        "5",
        "--val-every",
        "10",
        "--jobs",
        "1",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (record,) = benchmark.load_results(tmp_path / "results.jsonl")
    assert record["run_options"] == {
        "lr": 0.01,
        "lr_decay_rate": 0.5,
        "lr_decay_steps": 5,
        "val_every": 10,
    }
    assert record["key"].endswith("|lr=0.01,lr_decay_rate=0.5,lr_decay_steps=5,val_every=10")
    assert record["steps"] == 20
    # validation at steps 10 and 20; the last equals the final error
    assert [step for step, _ in record["val_curve"]] == [10, 20]
    assert record["val_curve"][-1][1] == pytest.approx(record["rel_l2"], rel=1e-6)


def test_recipe_cells_with_the_guarded_switch_run_and_resume(tmp_path):
    argv = [
        "benchmark",
        "--recipe",
        "default",
        "--problems",
        "burgers",
        "--strategies",
        "none",
        "auto-guarded",
        "--seeds",
        "0",
        "--steps",
        "40",
        "--trial-steps",
        "3",
        "--points",
        "residual=64,initial=16,boundary=16",
        "--jobs",
        "1",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    records = {r["strategy"]: r for r in benchmark.load_results(tmp_path / "results.jsonl")}
    assert set(records) == {"none", "auto-guarded"}
    for r in records.values():
        assert r["recipe"] == "burgers" and r["recipe_digest"] and r["torch"] and r["machine"]
    guarded = records["auto-guarded"]
    assert guarded["report"]["trial_steps"] == 3
    assert {t["candidate"] for t in guarded["report"]["trial"]} >= {"none", "reweight"}
    assert guarded["steps"] < 40  # the losing trials' steps count against the budget
    assert main(argv) == 0  # finished cells are skipped
    assert len(benchmark.load_results(tmp_path / "results.jsonl")) == 2


@pytest.mark.slow
def test_a_failing_cell_stops_the_run_without_running_the_queued_cells(tmp_path):
    bad = benchmark.make_cells(["burgers"], ["none"], [0], 20, 10, {"no_such_option": 1})
    good = benchmark.make_cells(["burgers"], ["none"], list(range(20)), 40, 10)
    with pytest.raises(ValueError, match="no_such_option"):
        benchmark.run_benchmark(
            bad + good, tmp_path, jobs=2, threads=1, points={"residual": 32}, progress=False
        )
    # the other worker finished a few cells (each leaves its run folder) and the executor had
    # queued a few more; the rest were cancelled instead of trained to the end
    started = list((tmp_path / "runs").iterdir()) if (tmp_path / "runs").exists() else []
    assert len(started) < 12


_ORPHAN_PARENT = """
import os, sys, time
from lightning_pinn.benchmark import worker_pool

def nap(path):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    pool = worker_pool(1)
    pool.submit(nap, sys.argv[1])
    time.sleep(120)
"""


def test_workers_exit_when_the_benchmark_process_is_killed(tmp_path):
    """``kill`` of a running benchmark (a scheduler's time limit) must not leave its workers
    training on the cores: they exit within seconds of their parent."""
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_PARENT)
    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        worker = int(pid_file.read_text())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived its parent by 10 s")
