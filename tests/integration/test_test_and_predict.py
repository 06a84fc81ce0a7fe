"""``trainer.test`` and ``trainer.predict`` on a PINN module, as a Lightning user calls them."""

import pytest
import torch
from _support import tiny_burgers, tiny_trainer


def _trained():
    problem = tiny_burgers()
    module = problem.module()
    dm = problem.datamodule(seed=0, eval_batch_size=1000)
    tiny_trainer(5).fit(module, datamodule=dm)
    return problem, module, dm


def _rel_l2(problem, module):
    x = problem.eval_points()
    with torch.no_grad():
        pred, ref = module(x), problem.reference(x)
    return float((pred - ref).norm() / ref.norm())


def test_trainer_test_logs_the_relative_error_on_the_evaluation_set():
    """Before: 'No test_dataloader() method defined' (no test_step either)."""
    problem, module, dm = _trained()
    (result,) = tiny_trainer(5).test(module, datamodule=dm, verbose=False)
    assert result["test/rel_l2"] == pytest.approx(_rel_l2(problem, module), rel=1e-5)
    (again,) = tiny_trainer(5, limit_val_batches=1.0).validate(module, datamodule=dm, verbose=False)
    assert again["val/rel_l2"] == pytest.approx(result["test/rel_l2"], rel=1e-6)


def test_trainer_predict_returns_the_network_at_the_points():
    problem, module, dm = _trained()
    batches = tiny_trainer(5).predict(module, datamodule=dm)
    x = problem.eval_points()
    with torch.no_grad():
        expected = module(x)
    torch.testing.assert_close(torch.cat(batches), expected)
    # a plain TensorDataset loader (batches are [x] lists) and a tensor loader
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:10]), batch_size=4)
    (first, *_) = tiny_trainer(5).predict(module, dataloaders=loader)
    torch.testing.assert_close(first, expected[:4])
    with pytest.raises(TypeError, match="predict_step expects a batch of points"):
        module.predict_step({"x": x}, 0)
