"""A 20-step training run of every registered problem through a Lightning Trainer."""

import lightning as L
import pytest
import torch

from lightning_pinn import problems
from lightning_pinn.networks import MLP


@pytest.mark.parametrize("name", problems.names())
def test_twenty_steps(name: str) -> None:
    problem = problems.get(name)
    module = problem.module(trunk=MLP(problem.input_dim, problem.output_dim, width=16, depth=2))
    dm = problem.datamodule(points={k: 32 for k in problem.point_sets()})
    trainer = L.Trainer(
        max_steps=20,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, dm)
    assert module.train_steps == 20
    assert module.loss_jacobian is not None and torch.isfinite(module.loss_jacobian).all()
    assert module.loss_jacobian.shape[0] == len(problem.loss_names)
