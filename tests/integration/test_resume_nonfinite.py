import math

import lightning as L
import pytest
import torch
from _support import tiny_burgers as _problem
from _support import tiny_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn.problems import ProblemModule


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _trainer(steps, callbacks=(), **kw):
    return tiny_trainer(steps, callbacks, deterministic=True, **kw)


class _StopAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.train_steps >= self.step:
            trainer.should_stop = True


def _run_with_resume(tmp_path, make_module, total=30, cut=15, callbacks=lambda: []):
    L.seed_everything(0)
    full = make_module()
    _trainer(total, callbacks()).fit(full, datamodule=_problem().datamodule(seed=3))

    L.seed_everything(0)
    first = make_module()
    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=cut, save_top_k=-1)
    # An interrupted run: stop right after the checkpoint at step `cut`.
    _trainer(total, [ckpt, _StopAt(cut), *callbacks()]).fit(
        first, datamodule=_problem().datamodule(seed=3)
    )
    path = tmp_path / f"epoch=0-step={cut}.ckpt"
    assert path.exists(), list(tmp_path.iterdir())

    L.seed_everything(123)  # the resumed run must not depend on the global RNG
    resumed = make_module()
    trainer = _trainer(total, callbacks())
    trainer.fit(resumed, datamodule=_problem().datamodule(seed=3), ckpt_path=str(path))
    return full, resumed, trainer


def test_resume_reproduces_uninterrupted_run_bitwise(tmp_path):
    full, resumed, trainer = _run_with_resume(tmp_path, lambda: _problem().module(lr=3e-3))
    assert resumed.train_steps == full.train_steps == 30
    assert trainer.global_step == 30
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _NaNAt(ProblemModule):
    def __init__(self, at, **kw):
        super().__init__(_problem(), **kw)
        self.at = at

    def losses(self, batch):
        out = super().losses(batch)
        if self.train_steps == self.at:
            out["initial"] = out["initial"] * math.nan
        return out


def test_nonfinite_raise_names_loss_and_step_and_keeps_weights():
    module = _NaNAt(3)
    snapshot = {}

    class Snap(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            snapshot.update(_state(pl_module))

    # NaN in the 4th step (3 had completed); the message said "step 3" before, unlike the
    # StepRecord and the deferred check, which count from 1
    match = r"\['initial'\] at training step 4 \(1-based; 3 steps had completed\).*checkpoint"
    with pytest.raises(FloatingPointError, match=match):
        _trainer(10, [Snap()]).fit(module, datamodule=_problem().datamodule())
    for k, v in _state(module).items():
        assert torch.equal(v, snapshot[k]) and torch.isfinite(v).all()


def test_nonfinite_skip_leaves_weights_and_optimizer_untouched():
    module = _NaNAt(3, on_nonfinite="skip")
    seen = {}

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if pl_module.train_steps == 3:
                seen["before"] = _state(pl_module)
                opt = trainer.optimizers[0]
                seen["opt_before"] = {id(p): s["exp_avg"].clone() for p, s in opt.state.items()}

        def on_train_batch_end(self, trainer, pl_module, *args):
            if pl_module.train_steps == 4:
                seen["after"] = _state(pl_module)
                opt = trainer.optimizers[0]
                seen["opt_after"] = {id(p): s["exp_avg"].clone() for p, s in opt.state.items()}

    trainer = _trainer(8, [Spy()])
    trainer.fit(module, datamodule=_problem().datamodule())
    assert module.skipped_steps == 1
    for k in seen["before"]:
        assert torch.equal(seen["before"][k], seen["after"][k])
    for k in seen["opt_before"]:
        assert torch.equal(seen["opt_before"][k], seen["opt_after"][k])
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert trainer.global_step == 8  # skipped steps do not count as optimizer steps


def test_bf16_mixed_trains_with_fp32_jacobian():
    p = _problem()
    module = p.module(lr=3e-3)
    dm = p.datamodule(seed=0)
    before = sum(v.item() for v in module.losses(dm.sample(999)).values())
    _trainer(60, precision="bf16-mixed").fit(module, datamodule=dm)
    after = sum(v.item() for v in module.losses(dm.sample(999)).values())
    assert after < before
    assert module.loss_jacobian.dtype == torch.float32
    assert torch.isfinite(module.loss_jacobian).all()


def _conflict(out):
    from lightning_pinn import ConflictCallback

    every = {"directional": "adapters", "magnitude": "adapters", "low": "adapters"}
    return [ConflictCallback(probe_steps=10, interventions=every, output_dir=out)]


@pytest.mark.slow
@pytest.mark.parametrize("cut", [6, 14], ids=["mid-probe", "after-adapters-switch"])
def test_resume_with_probe_and_switch_matches_uninterrupted_run(tmp_path, cut):
    full, resumed, trainer = _run_with_resume(
        tmp_path,
        lambda: _problem().module(lr=3e-3),
        total=20,
        cut=cut,
        callbacks=lambda: _conflict(tmp_path / "reports"),
    )
    assert full.has_adapters and resumed.has_adapters
    assert resumed.train_steps == full.train_steps == 20 and trainer.global_step == 20
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(full.loss_weights, resumed.loss_weights)
    assert full.strategy.state_dict().keys() == resumed.strategy.state_dict().keys()
    report_full = full.trainer.callbacks[0].report.to_dict()
    assert trainer.callbacks[0].report.to_dict() == report_full
