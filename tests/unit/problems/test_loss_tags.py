"""Every registered problem says which loss each forward belongs to (issue 15): under per-loss
adapters no forward is untagged and loss k moves with adapter k only."""

from __future__ import annotations

import pytest
import torch

from lightning_pinn import problems
from lightning_pinn.strategies import AdapterStrategy

NAMES = [n for n in problems.names() if len(problems.get(n).loss_names) >= 2]


@pytest.mark.parametrize("name", NAMES)
def test_problem_tags_its_forwards(name):
    problem = problems.get(name)
    module = problem.module(strategy=AdapterStrategy(rank=2, mode="per_loss"))
    batch = problem.datamodule(points={k: 8 for k in problem.point_sets()}).sample(0)

    def values():
        out = module.losses({k: v.clone() for k, v in batch.items()})
        return {k: v.detach() for k, v in out.items()}

    module.model.untagged_calls = 0
    before = values()
    assert module.model.untagged_calls == 0
    last = module.num_losses - 1
    with torch.no_grad():
        for p in module.adapter_parameters(last):
            p.add_(0.1)
    after = values()
    for k, loss in enumerate(module.loss_names):
        same = torch.equal(after[loss], before[loss])
        assert same == (k != last), (loss, before[loss], after[loss])
