"""Weights under adapters (issue 15): pathway norms and the default bound keep them finite
when an adapter absorbs its loss."""

from __future__ import annotations

import pytest
import torch

from lightning_pinn.gradients import row_norms
from lightning_pinn.strategies import AdapterStrategy, GradNormRule, ReweightStrategy
from lightning_pinn.strategies.adapters import DEFAULT_MAX_WEIGHT

STEPS = 2000


def _absorbed(step: int, gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """J ``[3, 40]`` whose row 2 fades (its adapter absorbs loss 2) and adapter gradients
    ``h_k`` ``[12]`` of steady size."""
    jac = torch.randn(3, 40, generator=gen)
    jac[2] *= 10.0 ** (-step / 250)  # 10^-8 after 2 000 steps
    own = [torch.randn(12, generator=gen) for _ in range(3)]
    return jac, own


def _max_weight(strategy, with_adapter_grads: bool) -> float:
    gen = torch.Generator().manual_seed(0)
    largest = 0.0
    for step in range(STEPS):
        jac, own = _absorbed(step, gen)
        if with_adapter_grads:
            _, weights = strategy.update(jac, torch.ones(3), adapter_grads=own)
        else:
            _, weights = strategy.update(jac, torch.ones(3))
        assert bool(torch.isfinite(weights).all())
        largest = max(largest, float(weights.max()))
    return largest


def test_todays_rule_explodes_on_the_synthetic_problem():
    assert _max_weight(ReweightStrategy(3), with_adapter_grads=False) > 1e4


def test_pathway_norms_keep_the_weights_small():
    strategy = AdapterStrategy(3, mode="per_loss")
    assert strategy.uses_pathway_norms
    assert _max_weight(strategy, with_adapter_grads=True) < 10.0


@pytest.mark.parametrize("rule", [None, GradNormRule(every=100)])
def test_default_bound_holds_without_pathway_norms(rule):
    strategy = AdapterStrategy(3, rule=rule) if rule is not None else AdapterStrategy(3)
    assert not strategy.uses_pathway_norms  # the summed design's default norms
    assert strategy.rule.max_weight == DEFAULT_MAX_WEIGHT
    assert _max_weight(strategy, with_adapter_grads=True) <= DEFAULT_MAX_WEIGHT


def test_pathway_norm_formula_and_explicit_bound():
    strategy = AdapterStrategy(2, pathway_norms=True, rule=GradNormRule(ema=0.0, max_weight=5.0))
    assert strategy.rule.max_weight == 5.0  # the user's bound is kept
    jac = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    own = [torch.tensor([4.0]), torch.tensor([1.0])]
    _, weights = strategy.update(jac, torch.ones(2), adapter_grads=own)
    norms = torch.hypot(row_norms(jac), torch.tensor([4.0, 1.0]))  # 5, 1
    expected = (norms.sum() / norms).clamp(max=5.0)  # 1.2, 6 -> 5
    torch.testing.assert_close(weights, expected)


def test_per_loss_default_rule_refreshes_on_an_interval():
    assert AdapterStrategy(3, mode="per_loss").rule.every == 100
    assert AdapterStrategy(3, mode="per_loss", reweighting_options={"every": 7}).rule.every == 7
    assert AdapterStrategy(3).rule.every == 1  # the summed design keeps its default
    rebuilt = AdapterStrategy(**AdapterStrategy(3, mode="per_loss").options())
    assert rebuilt.options() == AdapterStrategy(3, mode="per_loss").options()
