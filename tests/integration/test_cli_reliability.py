"""``lightning-pinn run`` under faults: bad paths fail in one line before training, a killed run
loses at most the checkpoint interval and resumes in its own version folder, concurrent runs
never share a folder, and the thread default does not oversubscribe the cores."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from lightning_pinn import problems
from lightning_pinn.cli import main
from lightning_pinn.run import (
    CHECKPOINT_EVERY_MAX,
    RunConfig,
    _experiment,
    _threads,
    claim_version_dir,
    default_threads,
    make_logger,
    run_experiment,
)

POINTS = {"residual": 32, "initial": 8, "boundary": 8}
TINY = ["--points", "residual=32,initial=8,boundary=8", "--no-progress-bar", "--no-plots"]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("lightning-pinn run: error: ")
    return err[0]


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a Trainer is built: the error must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("a Trainer was built before the bad input was reported")

    monkeypatch.setattr(_experiment, "build_trainer", refuse)


def test_truncated_checkpoint_is_one_line_before_training(tmp_path, capsys, no_training):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}, "global_step": 5, "loops": {}}, good)
    truncated = tmp_path / "last.ckpt"
    truncated.write_bytes(good.read_bytes()[:100])
    argv = ["run", "burgers", "--out", str(tmp_path / "out"), "--resume", str(truncated), *TINY]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert "not a readable checkpoint" in line and "last.ckpt" in line
    assert not (tmp_path / "out").exists()


def test_out_under_a_regular_file_is_one_line_before_training(tmp_path, capsys, no_training):
    (tmp_path / "file").write_text("")
    assert main(["run", "burgers", "--out", str(tmp_path / "file" / "runs"), *TINY]) == 2
    assert "is a file, not a directory" in _one_error_line(capsys)


def test_os_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    def disk_full(cfg):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("lightning_pinn.cli._run.run.run_experiment", disk_full)
    assert main(["run", "burgers", "--threads", "1"]) == 2
    assert "OSError: [Errno 28] No space left on device" in _one_error_line(capsys)

    def bug(cfg):
        raise KeyError("a bug")

    monkeypatch.setattr("lightning_pinn.cli._run.run.run_experiment", bug)
    with pytest.raises(KeyError):
        main(["run", "burgers", "--threads", "1"])
    monkeypatch.setattr("lightning_pinn.cli._run.run.run_experiment", disk_full)
    monkeypatch.setenv("LIGHTNING_PINN_TRACEBACK", "1")
    with pytest.raises(OSError, match="No space"):
        main(["run", "burgers", "--threads", "1"])


class _Kill(Exception):
    """Stands for SIGKILL: training stops at once, no checkpoint is written on the way out."""


class _KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            raise _Kill


def test_a_killed_run_loses_at_most_the_interval_and_resumes_in_its_folder(tmp_path, monkeypatch):
    max_steps, kill_at = 40, 27
    cfg = RunConfig(
        max_steps=max_steps, probe_steps=10, points=POINTS, out=str(tmp_path), plots=False,
        progress_bar=False,
    )  # fmt: skip
    interval = cfg.effective_checkpoint_every
    assert interval == min(CHECKPOINT_EVERY_MAX, max(1, max_steps // 4)) == 10
    build = _experiment.build_trainer

    def build_with_kill(cfg, callbacks, logger):
        return build(cfg, [*callbacks, _KillAt(kill_at)], logger)

    monkeypatch.setattr(_experiment, "build_trainer", build_with_kill)
    with pytest.raises(_Kill):
        run_experiment(cfg)
    monkeypatch.setattr(_experiment, "build_trainer", build)
    version = tmp_path / "burgers" / "version_0"
    last = version / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (version / "summary.json").exists()

    summary = run_experiment(
        RunConfig(**{**cfg.__dict__, "resume": str(last)})  # what `run --resume` builds
    )
    assert summary["resumed_from_step"] >= kill_at - interval
    assert summary["steps"] == max_steps
    assert Path(summary["log_dir"]).resolve() == version.resolve()
    assert json.loads((version / "summary.json").read_text())["steps"] == max_steps
    assert sorted(p.name for p in (tmp_path / "burgers").iterdir()) == ["version_0"]
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    # the metrics logged before the kill are kept, the resumed run's appended
    rows = (version / "metrics.csv").read_text().splitlines()
    steps = {int(float(r.split(",")[header_index(rows[0])])) for r in rows[1:]}
    assert min(steps) < summary["resumed_from_step"] < max(steps)


def header_index(header: str) -> int:
    return header.split(",").index("step")


def test_two_runs_sharing_out_never_share_a_version_folder(tmp_path):
    # both loggers exist before either run writes anything: counting folders gives both 0
    a = make_logger("csv", str(tmp_path), "burgers", 0)
    b = make_logger("csv", str(tmp_path), "burgers", 0)
    assert a.log_dir != b.log_dir
    assert {Path(a.log_dir).name, Path(b.log_dir).name} == {"version_0", "version_1"}


def test_racing_threads_claim_distinct_version_folders(tmp_path):
    n = 8
    barrier = threading.Barrier(n)
    claimed: list[Path] = []

    def claim() -> None:
        barrier.wait(timeout=30)
        claimed.append(claim_version_dir(tmp_path / "burgers"))

    threads = [threading.Thread(target=claim) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(claimed) == n and len(set(claimed)) == n
    assert all(p.is_dir() for p in claimed)


def test_threads_flag_default_and_oversubscription_notice(monkeypatch, capsys):
    seen: list[RunConfig] = []

    def fake_run(cfg):
        seen.append(cfg)
        return {"threads": cfg.threads}

    monkeypatch.setattr("lightning_pinn.cli._run.run.run_experiment", fake_run)
    monkeypatch.setattr(_threads, "free_cores", lambda: 8.0)
    assert main(["run", "burgers", "--threads", "3", "--json"]) == 0
    assert seen[-1].threads == 3
    assert "note" not in capsys.readouterr().err

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert main(["run", "burgers", "--json"]) == 0
    assert seen[-1].threads is None and default_threads() == 2  # the run picks and adapts it

    monkeypatch.setattr(_threads, "free_cores", lambda: 0.5)
    assert main(["run", "burgers", "--threads", "3", "--json"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 threads but only 0.5 of" in err[0] and "--threads 1" in err[0]
    assert main(["run", "burgers", "--threads", "1", "--json"]) == 0
    assert capsys.readouterr().err == ""  # one thread never oversubscribes


def test_oversubscription_notice_advises_what_is_left_to_change(monkeypatch):
    monkeypatch.setattr(_threads, "free_cores", lambda: 1.4)
    notice = _threads.oversubscription(threads=1, processes=2)
    assert notice is not None and "--jobs 1" in notice and "--threads 1" not in notice
    assert "--threads 1" in _threads.oversubscription(threads=2, processes=2)
    assert _threads.oversubscription(threads=1, processes=1) is None


def test_default_threads_one_per_process_when_shared(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "available_cores", lambda: 16)
    assert default_threads() == _threads.MAX_DEFAULT_THREADS == 4
    assert default_threads(processes=4) == 1
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    assert default_threads() == 2


def test_run_applies_threads(tmp_path):
    cfg = RunConfig(
        max_steps=3, probe_steps=2, points=POINTS, out=str(tmp_path), plots=False,
        progress_bar=False, logger="none", checkpoint=False, threads=1,
    )  # fmt: skip
    torch.set_num_threads(2)
    assert run_experiment(cfg)["threads"] == torch.get_num_threads() == 1


def test_benchmark_gives_one_thread_per_process_with_several_jobs(tmp_path, monkeypatch):
    import concurrent.futures as cf

    from lightning_pinn import benchmark
    from lightning_pinn.benchmark import _cells

    seen: list[int] = []

    def fake_cell(cell, out, threads, points):
        seen.append(threads)
        return {"key": cell.key}

    monkeypatch.setattr(_cells, "_run_cell", fake_cell)
    monkeypatch.setattr(
        _cells.cf, "ProcessPoolExecutor", lambda max_workers, **_: cf.ThreadPoolExecutor(2)
    )
    cells = benchmark.make_cells(["burgers"], ["none", "reweight"], [0], 4, 2)
    _cells.run_benchmark(cells, tmp_path / "a", jobs=2, progress=False)
    assert seen == [1, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    _cells.run_benchmark(cells, tmp_path / "b", jobs=1, progress=False)
    assert seen[2:] == [3, 3]


def test_a_kill_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    from lightning.fabric.plugins.io import torch_io

    from lightning_pinn.run import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, path)
    before = path.read_bytes()

    def dies_halfway(checkpoint, target):
        Path(target).write_bytes(b"PK\x03\x04 partial")
        raise KeyboardInterrupt  # the process is stopped while writing

    monkeypatch.setattr(torch_io, "_atomic_save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_empty_set_from_a_users_own_data_module_is_named():
    class _Empty(L.LightningDataModule):
        def train_dataloader(self):
            batch = {
                "residual": torch.rand(8, 2),
                "initial": torch.empty(0, 2),
                "boundary": torch.rand(4, 2),
            }
            return DataLoader([batch] * 4, batch_size=None)

    module = problems.get("burgers", n_residual=8, n_initial=4, n_boundary=4).module()
    trainer = L.Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    with pytest.raises(ValueError, match=r"empty point set\(s\) \['initial'\]"):
        trainer.fit(module, datamodule=_Empty())


def test_a_run_stopped_by_a_nonfinite_loss_is_one_line_and_exit_1(capsys, monkeypatch):
    from lightning_pinn.cli import _one_line_errors

    def diverge() -> int:
        raise FloatingPointError("non-finite loss or gradient for ['residual'] at step 7")

    assert _one_line_errors("run", diverge) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lightning-pinn run: training stopped: non-finite loss or gradient for ['residual'] "
        "at step 7"
    ]
    monkeypatch.setenv("LIGHTNING_PINN_TRACEBACK", "1")
    with pytest.raises(FloatingPointError):
        _one_line_errors("run", diverge)
