"""ThreadGovernor: fewer threads while other work shares the cores, back up after."""

import types

import torch

from lightning_pinn.run import RunConfig, run_experiment
from lightning_pinn.run._threads import ThreadGovernor, runnable_threads


def _drive(monkeypatch, samples, threads=2, cores=2, every=1, window=1):
    current = {"n": threads}
    monkeypatch.setattr(torch, "get_num_threads", lambda: current["n"])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: current.update(n=n))
    values = iter(samples)
    gov = ThreadGovernor(
        threads, every=every, window=window, cores=cores, sample=lambda: next(values)
    )
    seen = []
    for step in range(1, len(samples) + 1):
        gov.on_train_batch_end(types.SimpleNamespace(global_step=step), None)
        seen.append(current["n"])
    return gov, seen, current


def test_lowers_while_shared_and_raises_after(monkeypatch):
    # runnable threads: ours alone (2), another 2-thread run joins (4), both at 1 (2), it ends (1)
    gov, seen, current = _drive(monkeypatch, [2.0, 4.0, 2.0, 2.0, 1.0])
    assert seen == [2, 1, 1, 1, 2]
    assert gov.changes == [(2, 1), (5, 2)]
    current["n"] = 1
    gov.on_train_end(None, None)
    assert current["n"] == 2  # the process gets its threads back


def test_median_window_ignores_a_blip(monkeypatch):
    _, seen, _ = _drive(monkeypatch, [2.0, 2.0, 6.0, 2.0, 2.0], window=3)
    assert seen == [2, 2, 2, 2, 2]


def test_never_below_one_nor_above_the_default(monkeypatch):
    _, seen, _ = _drive(monkeypatch, [40.0, 0.0], threads=3, cores=8)
    assert seen == [1, 3]


def test_unknown_load_changes_nothing(monkeypatch):
    _, seen, _ = _drive(monkeypatch, [None, None])
    assert seen == [2, 2]


def test_runnable_threads_reads_a_number():
    value = runnable_threads()
    assert value is None or value >= 0


def test_run_adds_the_governor_only_without_threads(monkeypatch, tmp_path):
    added = []
    real_init = ThreadGovernor.__init__

    def spy(self, *args, **kwargs):
        added.append(args)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(ThreadGovernor, "__init__", spy)
    monkeypatch.setattr("lightning_pinn.run._experiment.default_threads", lambda: 2)
    common = dict(
        problem="burgers", max_steps=4, probe_steps=2, points={"residual": 16, "initial": 8,
        "boundary": 8}, logger="none", out=str(tmp_path), progress_bar=False,
        checkpoint=False, plots=False, recipe="vanilla",
    )  # fmt: skip
    before = torch.get_num_threads()
    try:
        run_experiment(RunConfig(threads=1, **common))
        assert added == []
        run_experiment(RunConfig(name="b", **common))
        assert added == [(2,)]
    finally:
        torch.set_num_threads(before)
