"""Strategies and rules as objects: built without K, bound by the module, one registry."""

from __future__ import annotations

import pytest
import torch

from lightning_pinn.strategies import (
    AdapterStrategy,
    FixedRule,
    GradNormRule,
    LRARule,
    NoneStrategy,
    ReLoBRaLoRule,
    ReweightStrategy,
    Strategy,
    SurgeryStrategy,
    build_strategy,
    resolve_strategy,
    strategy_names,
)

K, P = 3, 6


def _inputs(steps: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(K, P, generator=gen), torch.rand(K, generator=gen)) for _ in range(steps)]


@pytest.mark.parametrize("cls", [NoneStrategy, ReweightStrategy, AdapterStrategy, SurgeryStrategy])
def test_strategies_build_without_k_and_bind_later(cls):
    options = {"aggregator": "mgda"} if cls is SurgeryStrategy else {}
    s = cls(**options)
    assert not s.is_bound
    with pytest.raises(RuntimeError, match="not bound"):
        _ = s.num_losses
    assert s.bind(K) is s and s.num_losses == K
    assert s.bind(K) is s  # same K: no-op
    with pytest.raises(ValueError, match=f"bound to num_losses={K}.*build a new"):
        s.bind(K + 1)
    d, w = s.update(*_inputs(1)[0])
    assert d.shape == (P,) and w.shape == (K,)


@pytest.mark.parametrize("rule", [GradNormRule, LRARule, ReLoBRaLoRule, FixedRule])
def test_rules_build_without_k_and_match_the_bound_form(rule):
    late, early = rule(), rule(K)
    assert not late.is_bound and early.is_bound
    for jac, losses in _inputs():
        norms = jac.norm(dim=1)
        torch.testing.assert_close(late(norms, losses, jac), early(norms, losses, jac))
    assert late.num_losses == K


def test_update_binds_an_unbound_strategy_to_the_rows_of_j():
    s = ReweightStrategy()
    s.update(*_inputs(1)[0])
    assert s.num_losses == K and s.rule.num_losses == K


def test_rule_object_equals_the_named_rule_with_options():
    by_name = ReweightStrategy(K, "gradnorm", {"ema": 0.5, "every": 2})
    by_object = ReweightStrategy(rule=GradNormRule(ema=0.5, every=2))
    for jac, losses in _inputs(6):
        a, b = by_name.update(jac, losses), by_object.update(jac, losses)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    rebuilt = build_strategy("reweight", **by_object.options())
    assert rebuilt.options() == by_object.options()
    assert by_object.options()["reweighting_options"]["every"] == 2


def test_gradnorm_every_holds_the_weights_between_refreshes():
    rule = GradNormRule(ema=0.0, every=3).bind(2)
    jac = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    seen = [rule(jac.norm(dim=1), torch.ones(2), jac).clone() for _ in range(4)]
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], seen[2])
    assert not torch.equal(torch.ones(2), seen[0])


def test_rule_and_reweighting_together_are_rejected():
    with pytest.raises(ValueError, match="give the reweighting rule once"):
        ReweightStrategy(reweighting="lra", rule=GradNormRule())
    with pytest.raises(TypeError, match="rule must be a ReweightRule"):
        AdapterStrategy(rule="gradnorm")


def test_fixed_weights_are_checked_against_k_at_bind():
    rule = FixedRule(weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="weights must be 3 positive finite numbers"):
        rule.bind(3)
    with pytest.raises(ValueError, match="weights must be positive finite"):
        FixedRule(weights=[1.0, -2.0])


def test_adapter_strategy_needs_two_losses_at_bind():
    s = AdapterStrategy(rank=2)
    with pytest.raises(ValueError, match="num_losses >= 2"):
        s.bind(1)


def test_unknown_option_raises_and_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown strategy option\(s\) \['rnak'\].*'rank'"):
        build_strategy("adapters", rnak=4)
    with pytest.raises(ValueError, match="unknown strategy 'pcgrad'.*'none', 'reweight'"):
        build_strategy("pcgrad")
    with pytest.raises(ValueError, match=r"options \['rank'\] were given with the strategy"):
        resolve_strategy(AdapterStrategy(), rank=2)
    with pytest.raises(TypeError, match="a name .* or a Strategy object, got int"):
        resolve_strategy(3)  # type: ignore[arg-type]


def test_one_registry_lists_the_builtin_names():
    assert strategy_names()[:4] == ("none", "reweight", "adapters", "surgery")
    for name in strategy_names()[:4]:
        s = build_strategy(name, aggregator="mgda")
        assert isinstance(s, Strategy) and s.name == name and not s.is_bound


def test_adapter_routing_is_data_in_data_out():
    adapters = [[torch.zeros(2), torch.zeros(3)], [torch.zeros(1)], [torch.zeros(4)]]
    sizes = [5, 1, 4]
    weights = torch.tensor([1.0, 2.0, 3.0])
    own = AdapterStrategy(routing="own").bind(3)
    inputs = own.adapter_inputs(adapters)
    assert [len(x) for x in inputs] == [2, 1, 1]
    grads = [torch.full((n,), float(k + 1)) for k, n in enumerate(sizes)]
    for k, u in enumerate(own.adapter_updates(grads, weights, sizes)):
        assert torch.equal(u, weights[k] * grads[k])
    shared = AdapterStrategy(routing="shared").bind(3)
    inputs = shared.adapter_inputs(adapters)
    assert all(len(x) == 4 for x in inputs)
    h = [torch.arange(10.0) * (k + 1) for k in range(3)]
    combined = sum(weights[k] * h[k] for k in range(3))
    parts = shared.adapter_updates(h, weights, sizes)
    assert [p.numel() for p in parts] == sizes
    torch.testing.assert_close(torch.cat(parts), combined)


@pytest.mark.parametrize(
    ("make", "match"),
    [  # before: int(1.5) is 1 and True is 1, so these were accepted as other values
        (lambda: AdapterStrategy(adapter_seed=1.5), "adapter_seed must be an integer"),
        (lambda: AdapterStrategy(adapter_seed=True), "adapter_seed must be an integer"),
        (lambda: AdapterStrategy(alpha=True), "alpha and adapter_lr_mult are numbers"),
        (lambda: AdapterStrategy(adapter_lr_mult=True), "alpha and adapter_lr_mult"),
        (lambda: SurgeryStrategy(surgery_seed=1.5), "surgery_seed must be an integer"),
    ],
)
def test_seeds_and_numbers_refuse_other_types(make, match):
    with pytest.raises(TypeError, match=match):
        make()
