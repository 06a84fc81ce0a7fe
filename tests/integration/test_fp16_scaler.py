"""The fp16 gradient-scaler path, exercised on CPU with a real ``torch.amp.GradScaler``.

Lightning refuses ``precision="16-mixed"`` on CPU, so the test passes its ``MixedPrecision``
plugin explicitly with a CPU scaler: the same code path as ``16-mixed`` on a GPU
(``benchmarks/gpu_check.sh`` runs the real thing).
"""

import lightning as L
import pytest
import torch
from _support import tiny_burgers, tiny_trainer
from lightning.pytorch.plugins import MixedPrecision

from lightning_pinn import problems


class _FirstJ(L.Callback):
    def __init__(self):
        self.jac = None
        self.grad_scale_seen = None

    def on_train_batch_end(self, trainer, pl_module, *args):
        if self.jac is None:
            self.jac = pl_module.loss_jacobian.clone()


def _fit(plugins, steps=3, **module_kw):
    p = problems.get("burgers", n_residual=128, n_initial=32, n_boundary=32)
    L.seed_everything(0)
    module = p.module(**module_kw)
    spy = _FirstJ()
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        plugins=plugins,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[spy],
    )
    trainer.fit(module, datamodule=p.datamodule(seed=0))
    return module, spy


def test_scaled_losses_give_unscaled_jacobian():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)
    module, spy = _fit([MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    _, ref = _fit([])
    assert spy.jac.dtype == torch.float32
    rel = (spy.jac - ref.jac).norm(dim=1) / ref.jac.norm(dim=1)
    assert (rel < 1e-6).all(), rel
    assert scaler.get_scale() >= 2.0**14  # no overflow, no backoff


def test_nonfinite_step_is_skipped_by_the_scaler_not_written_into_weights():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)
    p = problems.get("burgers", n_residual=64, n_initial=16, n_boundary=16)

    class Overflow(type(p.module())):
        def losses(self, batch):
            out = super().losses(batch)
            if self.train_steps == 1:
                out["residual"] = out["residual"] * float("inf")
            return out

    module = Overflow(p)
    trainer = L.Trainer(
        max_steps=4,
        accelerator="cpu",
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=p.datamodule(seed=0))
    assert all(torch.isfinite(x).all() for x in module.parameters())
    assert scaler.get_scale() < 2.0**14  # the scaler saw the overflow and backed off


def test_16_true_is_refused_before_the_first_step():
    """Under precision='16-true' Adam's eps rounds to 0 in float16: its first step wrote inf
    into the weights, and step 2 failed with "non-finite loss ... lower the learning rate"."""
    problem = tiny_burgers()
    module = problem.module()
    before = [p.detach().clone() for p in module.parameters()]
    with pytest.raises(ValueError, match=r"precision='16-true'.*Use precision='16-mixed'"):
        tiny_trainer(3, precision="16-true").fit(module, problem.datamodule())
    assert module.train_steps == 0
    assert all(torch.equal(a, b.float()) for a, b in zip(before, module.parameters()))
