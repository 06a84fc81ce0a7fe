import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger

from lightning_pinn import problems


def _trainer(tmp_path, steps, **kw):
    return L.Trainer(
        max_steps=steps,
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
        val_check_interval=steps,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        **kw,
    )


def test_200_step_burgers_run_lowers_summed_loss(tmp_path):
    p = problems.get("burgers", n_residual=500, n_initial=100, n_boundary=100)
    module = p.module()
    dm = p.datamodule(seed=0)
    first = sum(v.item() for v in module.losses(dm.sample(0)).values())
    trainer = _trainer(tmp_path, 200)
    trainer.fit(module, datamodule=dm)
    last = sum(v.item() for v in module.losses(dm.sample(10_000)).values())
    assert last < 0.5 * first
    assert module.train_steps == 200 and trainer.global_step == 200
    assert module.loss_jacobian.shape == (3, sum(x.numel() for x in module.shared_parameters()))
    assert module.loss_jacobian.dtype == torch.float32
    metrics = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    header = metrics.splitlines()[0].split(",")
    for key in ("loss/residual", "grad_norm/initial", "weight/boundary", "val/rel_l2"):
        assert key in header
    assert 0 < float(trainer.callback_metrics["val/rel_l2"]) < 1.5
