"""Optimiser phases in a Trainer run: the warm-up/decay schedule applied per step, the switch
to L-BFGS (logged, checkpointed, resumable, statistics recorded on an interval), SOAP, and
the errors for bad phase input."""

from __future__ import annotations

import csv

import pytest
import torch
from _poisson import PoissonData, poisson, rel_l2
from _support import tiny_trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from lightning_pinn import ConflictCallback, _switch
from lightning_pinn.adapters import AdapterLinear, PerLossAdapter
from lightning_pinn.optim import LBFGSPhase, WarmupExponential, _phase_step

F64 = torch.float64


class _Seen(Callback):
    """The first-order learning rate, the phase and ``last_record`` at every step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.records: list[int | None] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        record = pl_module.last_record
        self.records.append(None if record is None else record.step)


def _metrics(path) -> list[dict[str, str]]:
    with open(next(path.rglob("metrics.csv"))) as f:
        return list(csv.DictReader(f))


def test_warmup_then_exponential_decay_is_applied_each_step(tiny_trainer):
    schedule = WarmupExponential(warmup_steps=4, decay_rate=0.5, decay_steps=8)
    module = poisson(lr=1e-2, schedule=schedule)
    seen = _Seen()
    tiny_trainer(20, [seen]).fit(module, PoissonData(16))
    expected = [1e-2 * schedule.factor(s) for s in range(20)]
    assert seen.lrs == pytest.approx(expected)
    assert seen.lrs[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert seen.lrs[12] == pytest.approx(5e-3)  # 8 steps after the warm-up


def test_step_decay_still_works_without_a_schedule(tiny_trainer):
    module = poisson(lr=1e-2, lr_decay_rate=0.5, lr_decay_steps=5)
    seen = _Seen()
    tiny_trainer(12, [seen]).fit(module, PoissonData(16))
    assert seen.lrs == pytest.approx([1e-2] * 5 + [5e-3] * 5 + [2.5e-3] * 2)


def test_switch_to_lbfgs_is_logged_recorded_and_counted(tiny_trainer, tmp_path, monkeypatch):
    infos: list[str] = []
    monkeypatch.setattr(_phase_step, "rank_zero_info", infos.append)
    phase = LBFGSPhase(after=6, max_iter=2, record_every=3)
    module = poisson(lbfgs=phase)
    seen = _Seen()
    trainer = tiny_trainer(14, [seen], logger=CSVLogger(tmp_path), log_every_n_steps=1)
    trainer.fit(module, PoissonData(16))
    assert any("switching to L-BFGS after 6 first-order steps" in line for line in infos)
    assert trainer.global_step == 14 and module.train_steps == 14
    assert module.lbfgs_run.steps == 8 and module.lbfgs_run.started_at == 6
    assert isinstance(trainer.optimizers[1], torch.optim.LBFGS)
    # First-order steps publish a record each; L-BFGS steps 1, 4, 7 (every 3rd) and the last.
    assert seen.records == [1, 2, 3, 4, 5, 6, 7, None, None, 10, None, None, 13, 14]
    rows = _metrics(tmp_path)
    phases = {int(r["step"]): float(r["optim/phase"]) for r in rows if r.get("optim/phase")}
    assert phases[4] == 0.0 and phases[6] == 1.0 and phases[13] == 1.0
    grad_rows = [int(r["step"]) for r in rows if r.get("grad_norm/residual")]
    assert {6, 9, 12, 13} <= set(grad_rows)  # J keeps being recorded in the L-BFGS phase


def test_lbfgs_phase_runs_under_conflict_callback(tiny_trainer):
    callback = ConflictCallback(probe_steps=4, auto_switch=False)
    module = poisson(lbfgs=LBFGSPhase(after=6, max_iter=2, record_every=2))
    tiny_trainer(12, [callback]).fit(module, PoissonData(16))
    assert callback.report is not None and module.lbfgs_run.steps == 6


def test_lbfgs_phase_inside_the_probe_fails_in_setup(tiny_trainer):
    callback = ConflictCallback(probe_steps=8)
    module = poisson(lbfgs=LBFGSPhase(after=6, max_iter=2))
    seen = _Seen()
    with pytest.raises(ValueError, match=r"starts after step 6, inside the probe of probe_steps=8"):
        tiny_trainer(12, [callback, seen]).fit(module, PoissonData(16))
    assert seen.lrs == [] and module.train_steps == 0  # before the first step


class _WeightsAt(Callback):
    def __init__(self, step: int) -> None:
        self.step, self.weights = step, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.train_steps == self.step:
            self.weights = pl_module.loss_weights.clone()


def test_lbfgs_uses_the_strategy_weights_frozen_at_the_switch(tiny_trainer):
    module = poisson(strategy="reweight", lbfgs=LBFGSPhase(after=5, max_iter=2))
    seen = _WeightsAt(5)
    tiny_trainer(8, [seen]).fit(module, PoissonData(16))
    assert not torch.allclose(seen.weights, torch.ones(2))
    assert torch.equal(module.lbfgs_run.weights, seen.weights)


def test_lbfgs_moves_adapters_too(tiny_trainer):
    module = poisson(strategy="adapters", lbfgs=LBFGSPhase(after=3, max_iter=2))
    trainer = tiny_trainer(6)
    trainer.fit(module, PoissonData(16))
    lbfgs_params = trainer.optimizers[1].param_groups[0]["params"]
    assert len(lbfgs_params) == len(module.shared_parameters()) + len(
        module._all_adapter_parameters()
    )


def test_fold_adapters_trains_the_prediction_alone_in_the_lbfgs_phase(tiny_trainer):
    module = poisson(strategy="adapters", lbfgs=LBFGSPhase(after=3, max_iter=2, fold_adapters=True))
    assert module.has_adapters
    trainer = tiny_trainer(6)
    trainer.fit(module, PoissonData(16))
    assert not module.has_adapters and not isinstance(module.model, PerLossAdapter)
    assert not any(isinstance(m, AdapterLinear) for m in module.model.modules())
    lbfgs_params = trainer.optimizers[1].param_groups[0]["params"]
    assert [id(p) for p in lbfgs_params] == [id(p) for p in module.shared_parameters()]
    assert len(trainer.optimizers[0].param_groups) == 1  # the adapters' group left Adam
    assert all(len(c.scheduler.base_lrs) == 1 for c in trainer.lr_scheduler_configs)


def test_fold_adapters_keeps_the_function_and_the_trunk_tensors(tiny_trainer):
    module = poisson(dtype=F64, strategy="adapters", adapter_lr_mult=10.0)
    tiny_trainer(3, precision="64-true").fit(module, PoissonData(16, F64))
    adapter = torch.cat([p.detach().flatten() for p in module._all_adapter_parameters()])
    assert adapter.abs().max() > 0  # three Adam steps moved the adapters
    grid = torch.linspace(0, 1, 33, dtype=F64)[:, None]
    shared = [id(p) for p in module.shared_parameters()]
    with torch.no_grad():
        before = module(grid)
    _switch.fold_adapters(module)
    with torch.no_grad():
        after = module(grid)
    torch.testing.assert_close(after, before, rtol=1e-12, atol=1e-12)
    assert [id(p) for p in module.shared_parameters()] == shared  # Adam's state stays theirs
    assert module._all_adapter_parameters() == []


@pytest.mark.parametrize("strategy", ["adapters", "none"], ids=["attached", "at-a-switch"])
def test_fold_adapters_refuses_nonlinear_adapters_at_fit_start(tiny_trainer, strategy):
    phase = LBFGSPhase(after=3, max_iter=2, fold_adapters=True)
    module = poisson(strategy=strategy, lbfgs=phase, form="nonlinear")
    seen = _Seen()
    with pytest.raises(ValueError, match="nonlinear branches, which cannot be folded"):
        tiny_trainer(6, [seen]).fit(module, PoissonData(16))
    assert seen.lrs == []  # before the first step


def test_fold_adapters_refuses_a_callbacks_nonlinear_intervention_at_fit_start(tiny_trainer):
    phase = LBFGSPhase(after=6, max_iter=2, fold_adapters=True)
    module = poisson(lbfgs=phase)
    callback = ConflictCallback(probe_steps=4, strategy_options={"form": "nonlinear"})
    with pytest.raises(ValueError, match="cannot fold into the weights at its switch"):
        tiny_trainer(10, [callback]).fit(module, PoissonData(16))
    assert module.train_steps == 0


def test_fold_adapters_refuses_other_parametrisations_at_fit_start(tiny_trainer):
    module = poisson(lbfgs=LBFGSPhase(after=3, max_iter=2, fold_adapters=True))
    torch.nn.utils.parametrizations.weight_norm(module.model[2])
    with pytest.raises(ValueError, match=r"layers \['model.2'\] have parametrised weights"):
        tiny_trainer(6).fit(module, PoissonData(16))


def test_without_fold_adapters_the_lbfgs_phase_keeps_them(tiny_trainer):
    module = poisson(strategy="adapters", lbfgs=LBFGSPhase(after=3, max_iter=2))
    tiny_trainer(6).fit(module, PoissonData(16))
    assert module.has_adapters and isinstance(module.model, PerLossAdapter)


@pytest.mark.slow
def test_lbfgs_reaches_rel_l2_1e4_on_poisson_within_300_iterations(tiny_trainer):
    phase = LBFGSPhase(after=200, max_iter=5, history_size=50)
    module = poisson(dtype=F64, lr=1e-2, lbfgs=phase)
    trainer = tiny_trainer(260, precision="64-true")
    trainer.fit(module, PoissonData(128, F64))
    before = rel_l2(module)
    lbfgs = trainer.optimizers[1]
    iterations = lbfgs.state[lbfgs.param_groups[0]["params"][0]]["n_iter"]
    assert iterations <= 300
    assert before < 1e-4, f"rel L2 {before:.3g} after {iterations} L-BFGS iterations"


def test_adam_alone_does_not_reach_the_lbfgs_accuracy(tiny_trainer):
    module = poisson(dtype=F64, lr=1e-2)
    tiny_trainer(260, precision="64-true").fit(module, PoissonData(128, F64))
    assert rel_l2(module) > 1e-3


def _run(tmp_path, steps, ckpt_path=None, every=None, fold=False):
    torch.manual_seed(0)
    phase = LBFGSPhase(after=10, max_iter=3, record_every=4, fold_adapters=fold)
    options = {"strategy": "adapters"} if fold else {}
    module = poisson(dtype=F64, lbfgs=phase, **options)
    callbacks = []
    if every is not None:
        callbacks.append(
            ModelCheckpoint(tmp_path, every_n_train_steps=every, save_top_k=-1, save_last=False)
        )
    trainer = tiny_trainer(steps, callbacks, precision="64-true")
    trainer.fit(module, PoissonData(32, F64), ckpt_path=ckpt_path)
    return module, trainer


@pytest.mark.parametrize("fold", [False, True], ids=["plain", "fold-adapters"])
def test_resume_inside_the_lbfgs_phase_matches_an_uninterrupted_run(tmp_path, fold):
    whole, _ = _run(tmp_path / "a", 24, fold=fold)
    _, trainer = _run(tmp_path / "b", 16, every=16, fold=fold)
    ckpt = next((tmp_path / "b").glob("*step=16.ckpt"))
    state = torch.load(ckpt, weights_only=True)  # data only: loads without pickled classes
    assert state["lightning_pinn_optim"]["lbfgs"]["steps"] == 6
    assert len(state["optimizer_states"]) == 2  # the L-BFGS history is Lightning's to save
    resumed, trainer = _run(tmp_path / "c", 24, ckpt_path=ckpt, fold=fold)
    assert not resumed.has_adapters and not whole.has_adapters  # folded, or never attached
    assert resumed.lbfgs_run.steps == whole.lbfgs_run.steps == 14
    for p, q in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)


def test_stalled_lbfgs_stops_training(tiny_trainer, monkeypatch):
    infos: list[str] = []
    monkeypatch.setattr(_phase_step, "rank_zero_info", infos.append)
    phase = LBFGSPhase(after=2, tolerance_grad=1e3, stall_steps=3)  # every call returns at once
    module = poisson(lbfgs=phase)
    trainer = tiny_trainer(50)
    trainer.fit(module, PoissonData(16))
    assert any("L-BFGS stalled" in line for line in infos)
    assert module.lbfgs_run.stopped and module.lbfgs_run.steps == 4
    assert trainer.global_step == 6
    # the last step records where the phase ended (the run summary's final losses)
    assert module.last_losses is not None and module.last_record.step == 6


def test_soap_trains_the_module(tiny_trainer):
    pytest.importorskip("pytorch_optimizer")
    module = poisson(optimizer="soap", lr=1e-2)
    data = PoissonData(32)
    start = sum(v.item() for v in module.losses(next(iter(data.train_dataloader()))).values())
    trainer = tiny_trainer(30)
    trainer.fit(module, data)
    assert type(trainer.optimizers[0]).__name__ == "SOAP"
    assert module.last_losses.sum().item() < 0.8 * start


def test_lbfgs_phase_after_max_steps_is_an_error_at_fit_start(tiny_trainer):
    module = poisson(lbfgs=LBFGSPhase(after=20))
    with pytest.raises(ValueError, match=r"max_steps=20.*LBFGSPhase\(after=\.\.\.\) below 20"):
        tiny_trainer(20).fit(module, PoissonData(16))
    assert module.train_steps == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"optimizer": "lion"}, ValueError, "unknown optimizer 'lion'; valid: adam, adamw, sgd"),
        (
            {"schedule": WarmupExponential(warmup_steps=10), "lr_decay_rate": 0.5},
            ValueError,
            "either schedule=WarmupExponential",
        ),
        ({"schedule": "exponential"}, TypeError, "schedule must be a"),
        ({"lbfgs": {"after": -3}}, ValueError, "LBFGSPhase after must be an integer >= 0"),
        ({"lbfgs": 100}, TypeError, "lbfgs must be a lightning_pinn.optim.LBFGSPhase"),
        (
            {"lbfgs": {"after": 3, "fold_adapters": "false"}},
            ValueError,
            "LBFGSPhase fold_adapters must be True or False, got 'false'",
        ),
    ],
)
def test_bad_phase_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        poisson(**kwargs)


def test_phases_as_dicts_are_kept_as_data_in_hparams():
    module = poisson(schedule={"warmup_steps": 10}, lbfgs=LBFGSPhase(after=100))
    assert module.schedule == WarmupExponential(warmup_steps=10)
    assert module.hparams["lbfgs"]["after"] == 100
    assert module.hparams["schedule"]["warmup_steps"] == 10


def test_warmup_must_not_be_negative():
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        poisson(schedule=WarmupExponential(warmup_steps=-5))
