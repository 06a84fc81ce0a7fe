import pytest
import torch
from _asserts import (
    assert_finite_shape,
    assert_permutation_equivariant,
    assert_scale_invariant,
    run,
    sequence,
)

from lightning_pinn.strategies import (
    RULE_NAMES,
    AdapterStrategy,
    GradNormRule,
    LRARule,
    ReLoBRaLoRule,
    ReweightStrategy,
    build_rule,
    build_strategy,
)
from lightning_pinn.strategies.reweight import row_norms

K, P = 3, 7


def _factory(rule, **options):
    def make():
        strategy = ReweightStrategy(K, rule, options)
        return lambda jac, losses: strategy.update(jac, losses)

    return make


LOSS_BASED = {"relobralo"}
GRAD_BASED = [r for r in RULE_NAMES if r not in LOSS_BASED]


@pytest.mark.parametrize("rule", RULE_NAMES)
@pytest.mark.parametrize("max_weight", [None, 5.0])
def test_finite_positive_shape(rule, max_weight):
    assert_finite_shape(_factory(rule, max_weight=max_weight), K, P)


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_max_weight_bounds_every_rule(rule):
    jac = torch.tensor([[1e-6, 0.0], [0.0, 1.0], [3.0, 3.0]])
    losses = torch.tensor([1e-6, 1.0, 100.0])
    _, weights = run(_factory(rule, max_weight=2.0), [(jac, losses), (jac, losses * 0.5)] * 3)
    assert (weights <= 2.0).all()


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_permutation_equivariant(rule):
    # LRA treats loss 0 as the residual: only permutations fixing it are symmetries.
    perm = [0, 2, 1] if rule == "lra" else [2, 0, 1]
    assert_permutation_equivariant(_factory(rule), sequence(K, P), perm)


@pytest.mark.parametrize("rule", GRAD_BASED)
@pytest.mark.parametrize("scale", [1e-3, 1e4])
def test_invariant_to_common_gradient_scale(rule, scale):
    assert_scale_invariant(_factory(rule), sequence(K, P), scale, of="gradients")


@pytest.mark.parametrize("scale", [1e-3, 1e4])
def test_relobralo_invariant_to_common_loss_scale(scale):
    assert_scale_invariant(_factory("relobralo"), sequence(K, P, steps=5), scale, of="losses")


def test_gradnorm_hand_computed():
    rule = build_rule("gradnorm", 3, ema=0.5)
    norms = torch.tensor([1.0, 2.0, 4.0])
    w = rule(norms, torch.ones(3), torch.zeros(3, 1))
    target = torch.tensor([7.0, 3.5, 1.75])
    torch.testing.assert_close(w, 0.5 + 0.5 * target)
    w = rule(norms, torch.ones(3), torch.zeros(3, 1))
    torch.testing.assert_close(w, 0.5 * (0.5 + 0.5 * target) + 0.5 * target)


def test_gradnorm_every_holds_weights_between_updates():
    rule = build_rule("gradnorm", 2, ema=0.0, every=2)
    w0 = rule(torch.tensor([1.0, 3.0]), torch.ones(2), torch.zeros(2, 1)).clone()
    w1 = rule(torch.tensor([3.0, 1.0]), torch.ones(2), torch.zeros(2, 1)).clone()
    w2 = rule(torch.tensor([3.0, 1.0]), torch.ones(2), torch.zeros(2, 1)).clone()
    torch.testing.assert_close(w0, torch.tensor([4.0, 4 / 3]))
    torch.testing.assert_close(w1, w0)
    torch.testing.assert_close(w2, torch.tensor([4 / 3, 4.0]))


def test_lra_hand_computed():
    # max|J_0| = 4; mean|J_1| = 2, mean|J_2| = 0.5
    jac = torch.tensor([[4.0, -2.0], [1.0, -3.0], [0.5, 0.5]])
    rule = build_rule("lra", 3)
    w = rule(jac.norm(dim=1), torch.ones(3), jac)
    # step 1 (λ = 1): λ̂ = [., 4/2, 4/0.5] -> λ = 0.9 + 0.1 λ̂
    torch.testing.assert_close(w, torch.tensor([1.0, 1.1, 1.7]))
    w = rule(jac.norm(dim=1), torch.ones(3), jac)
    # step 2: λ̂_i = 4 / (λ_i mean|J_i|)
    expected = torch.tensor([1.0, 0.9 * 1.1 + 0.1 * 4 / (1.1 * 2), 0.9 * 1.7 + 0.1 * 4 / 0.85])
    torch.testing.assert_close(w, expected)


def test_lra_unweighted_denominator():
    jac = torch.tensor([[4.0, -2.0], [1.0, -3.0]])
    rule = build_rule("lra", 2, weighted=False, beta=0.0)
    rule(jac.norm(dim=1), torch.ones(2), jac)
    w = rule(jac.norm(dim=1), torch.ones(2), jac)
    torch.testing.assert_close(w, torch.tensor([1.0, 2.0]))


def test_relobralo_matches_reference_formula():
    k, temp, alpha = 2, 0.1, 0.999
    rule = build_rule("relobralo", k, expected_rho=True, rho=0.99)
    l0, l1, l2 = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.8]), torch.tensor([0.4, 1.0])
    zeros = torch.zeros(k, 1)
    torch.testing.assert_close(rule(torch.ones(k), l0, zeros), torch.ones(k))

    def bal(num, den):
        return k * torch.softmax(num / (temp * den + 1e-12), dim=0)

    lam1 = rule(torch.ones(k), l1, zeros).clone()
    torch.testing.assert_close(lam1, bal(l1, l0))  # second call: λ̂(1, 0) alone
    lam2 = rule(torch.ones(k), l2, zeros)
    expected = 0.99 * alpha * lam1 + 0.01 * alpha * bal(l2, l0) + (1 - alpha) * bal(l2, l1)
    torch.testing.assert_close(lam2, expected)


def test_relobralo_bernoulli_is_seeded_and_resumable():
    seq = [(torch.randn(2, 4), torch.rand(2) + 0.1) for _ in range(30)]
    a = build_rule("relobralo", 2, rho=0.5, seed=3)
    b = build_rule("relobralo", 2, rho=0.5, seed=3)
    for i, (jac, losses) in enumerate(seq):
        torch.manual_seed(i)  # the global RNG must not matter
        wa = a(row_norms(jac), losses, jac)
        if i == 14:
            b = build_rule("relobralo", 2, rho=0.5, seed=3)
            b.load_state_dict(a.state_dict())
        elif i > 14:
            torch.testing.assert_close(b(row_norms(jac), losses, jac), wa)


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_state_dict_round_trip(rule):
    inputs = sequence(K, P, steps=4)
    s = ReweightStrategy(K, rule)
    for jac, losses in inputs[:2]:
        s.update(jac, losses)
    fresh = ReweightStrategy(K, rule)
    fresh.load_state_dict(s.state_dict())
    for jac, losses in inputs[2:]:
        torch.testing.assert_close(fresh.update(jac, losses), s.update(jac, losses))


def test_fixed_weights_and_none_alias():
    jac = torch.randn(3, 4)
    d, w = ReweightStrategy(3, "fixed", {"weights": [1.0, 2.0, 3.0]}).update(jac, torch.ones(3))
    torch.testing.assert_close(d, torch.tensor([1.0, 2.0, 3.0]) @ jac)
    d, w = ReweightStrategy(3, "none").update(jac, torch.ones(3))
    torch.testing.assert_close(w, torch.ones(3))
    torch.testing.assert_close(d, jac.sum(0))


def test_update_is_weights_times_jacobian():
    jac = torch.randn(K, P)
    d, w = ReweightStrategy(K).update(jac, torch.ones(K))
    torch.testing.assert_close(d, w @ jac)


def test_row_norms_do_not_overflow():
    jac = torch.full((2, 10), 1e25)
    torch.testing.assert_close(row_norms(jac), torch.full((2,), 1e25 * 10**0.5))


def test_unknown_rule_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown reweighting rule 'softmax'.*'gradnorm'.*'lra'"):
        build_rule("softmax", 3)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['emma'\].*'ema'"):
        build_rule("gradnorm", 3, emma=0.9)


@pytest.mark.parametrize(
    ("rule", "options", "message"),
    [
        ("gradnorm", {"ema": 1.5}, "ema must be"),
        ("gradnorm", {"every": 0}, "every must be"),
        ("gradnorm", {"max_weight": -1.0}, "max_weight must be"),
        ("relobralo", {"temperature": 0.0}, "temperature must be"),
        ("fixed", {"weights": [1.0, -1.0, 1.0]}, "weights must be 3 positive"),
    ],
)
def test_bad_options(rule, options, message):
    with pytest.raises(ValueError, match=message):
        build_rule(rule, 3, **options)


def test_checkpoint_of_another_rule_is_rejected():
    state = ReweightStrategy(K, "lra").state_dict()
    with pytest.raises(ValueError, match="reweighting='lra'"):
        ReweightStrategy(K, "gradnorm").load_state_dict(state)


def test_registered_and_options_rebuild():
    s = build_strategy("reweight", num_losses=K, reweighting="lra", rank=4, aggregator="x")
    assert isinstance(s, ReweightStrategy) and s.rule.name == "lra"
    assert build_strategy("reweight", **s.options()).options() == s.options()


def test_adapter_strategy_options_and_validation():
    s = build_strategy("adapters", num_losses=3, rank=2, routing="shared", aggregator="mgda")
    assert isinstance(s, AdapterStrategy) and s.uses_adapters
    assert s.options()["routing"] == "shared" and s.options()["rank"] == 2
    assert s.adapter_options() == {
        "num_losses": 3,
        "rank": 2,
        "alpha": None,
        "target": "wide",
        "seed": 0,
    }
    assert AdapterStrategy(**s.options()).options() == s.options()
    jac = torch.randn(3, 5)
    torch.testing.assert_close(
        s.update(jac, torch.ones(3)), ReweightStrategy(3).update(jac, torch.ones(3))
    )
    with pytest.raises(ValueError, match=r"routing must be one of \('own', 'shared'\), got 'mine'"):
        AdapterStrategy(3, routing="mine")
    with pytest.raises(ValueError, match="rank must be a positive integer, got 0"):
        AdapterStrategy(3, rank=0)
    with pytest.raises(ValueError, match="num_losses >= 2"):
        AdapterStrategy(1)
    with pytest.raises(ValueError, match="adapter_lr_mult"):
        AdapterStrategy(3, adapter_lr_mult=-1.0)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [  # before: each was accepted (bool("no") is True; int(1.5) is 1; nan passed as a floor)
        (lambda: LRARule(weighted="no"), TypeError, "weighted must be True or False"),
        (lambda: LRARule(min_norm=float("nan")), ValueError, "min_norm must be a finite"),
        (lambda: LRARule(min_norm=-1), ValueError, "min_norm must be a finite number > 0"),
        (lambda: GradNormRule(min_norm=float("inf")), ValueError, "min_norm must be a finite"),
        (lambda: ReLoBRaLoRule(expected_rho="no"), TypeError, "expected_rho must be True"),
        (lambda: ReLoBRaLoRule(seed=1.5), TypeError, "seed must be an integer"),
        (lambda: ReLoBRaLoRule(eps=0), ValueError, "eps must be a finite number > 0"),
        (lambda: ReLoBRaLoRule(temperature=float("inf")), ValueError, "temperature must be"),
    ],
)
def test_rule_options_are_checked(make, error, match):
    with pytest.raises(error, match=match):
        make()
