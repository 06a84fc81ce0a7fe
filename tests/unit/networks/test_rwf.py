"""Random weight factorisation as a parametrisation of nn.Linear."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader, TensorDataset

from lightning_pinn import PINNModule
from lightning_pinn._adapter_config import fold_and_unwrap
from lightning_pinn.adapters import PerLossAdapter
from lightning_pinn.networks import MLP, RWF, WeightFactorization, apply_rwf
from lightning_pinn.operators import laplacian, laplacian_fwd

S, V = "parametrizations.weight.original0", "parametrizations.weight.original1"


def test_factorised_layer_is_still_a_linear_with_the_same_output():
    layer = nn.Linear(5, 7)
    plain = nn.Linear(5, 7)
    plain.load_state_dict(layer.state_dict())
    apply_rwf(layer, mean=1.0, std=0.1)
    assert isinstance(layer, nn.Linear)
    assert parametrize.is_parametrized(layer, "weight")
    assert sorted(n for n, _ in layer.named_parameters()) == sorted(["bias", S, V])
    x = torch.randn(11, 5)
    torch.testing.assert_close(layer(x), plain(x), rtol=1e-6, atol=1e-6)


def test_factors_follow_the_paper():
    layer = apply_rwf(nn.Linear(40, 4000), mean=1.0, std=0.1)
    params = dict(layer.named_parameters())
    s, v = params[S], params[V]
    assert s.shape == (4000,) and v.shape == (4000, 40)
    assert s.mean().item() == pytest.approx(1.0, abs=0.01)
    assert s.std().item() == pytest.approx(0.1, rel=0.05)
    torch.testing.assert_close(layer.weight, torch.exp(s)[:, None] * v)


def test_gradients_reach_both_factors():
    layer = apply_rwf(nn.Linear(3, 4))
    layer(torch.randn(8, 3)).pow(2).sum().backward()
    params = dict(layer.named_parameters())
    assert params[S].grad.abs().sum() > 0 and params[V].grad.abs().sum() > 0


def test_trunk_option_equals_apply_rwf():
    torch.manual_seed(0)
    a = MLP(2, 1, width=8, depth=2, rwf=RWF(mean=0.5, std=0.2))
    torch.manual_seed(0)
    b = apply_rwf(MLP(2, 1, width=8, depth=2), mean=0.5, std=0.2)
    assert list(a.state_dict()) == list(b.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_state_dict_round_trip():
    a = MLP(2, 1, width=8, depth=2, rwf=RWF())
    b = MLP(2, 1, width=8, depth=2, rwf=RWF())
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 2)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("mean", "std", "match"),
    [
        (1.0, -0.1, "std must be a finite number >= 0, got -0.1"),
        (1.0, math.inf, "std must be a finite number >= 0, got inf"),
        (math.nan, 0.1, "mean must be a finite number, got nan"),
    ],
)
def test_bad_options_raise(mean, std, match):
    for build in (RWF, WeightFactorization, lambda m, s: apply_rwf(nn.Linear(2, 2), m, s)):
        with pytest.raises(ValueError, match=match):
            build(mean, std)


def test_applying_twice_or_to_no_linear_raises():
    net = apply_rwf(nn.Sequential(nn.Linear(2, 3), nn.Tanh()))
    with pytest.raises(ValueError, match=r"layers \['0'\] are already parametrised"):
        apply_rwf(net)
    with pytest.raises(ValueError, match="found no nn.Linear"):
        apply_rwf(nn.Sequential(nn.Tanh()))


def test_merged_folds_a_factorised_layer_into_a_plain_linear():
    trunk = MLP(2, 1, width=8, depth=2, rwf=RWF())
    model = PerLossAdapter(trunk, num_losses=2, rank=2)
    with torch.no_grad():
        for k in range(2):
            for p in model.adapter_parameters(k):
                p.normal_()
    x = torch.randn(6, 2)
    merged = model.merged()
    assert type(merged.net[0]) is nn.Linear  # the folded weight, parametrisation dropped
    torch.testing.assert_close(merged(x), model(x), rtol=1e-5, atol=1e-6)
    # the wrapped trunk keeps its factorisation (merging works on a copy)
    assert parametrize.is_parametrized(model.trunk.net[0].base_layer, "weight")


def test_fold_in_place_keeps_the_factorisation_and_its_scales():
    trunk = MLP(2, 1, width=8, depth=2, rwf=RWF())
    model = PerLossAdapter(trunk, num_losses=2, rank=2, mode="per_loss")
    with torch.no_grad():
        for k in range(2):
            for p in model.adapter_parameters(k):
                p.normal_()
    x = torch.randn(6, 2)
    expected = model(x).detach()  # the prediction: trunk + the residual's adapter
    scales = [
        m.base_layer.parametrizations.weight.original0.clone()
        for m in model.trunk.net
        if hasattr(m, "base_layer")
    ]
    state = torch.get_rng_state()
    plain = fold_and_unwrap(model)  # V <- V + dW / exp(s): the same tensors, s untouched
    assert torch.equal(torch.get_rng_state(), state)
    layers = [m for m in plain.net if isinstance(m, nn.Linear)]
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    after = [m.parametrizations.weight.original0 for m in layers[: len(scales)]]
    assert all(torch.equal(a, b) for a, b in zip(after, scales, strict=True))
    torch.testing.assert_close(plain(x), expected, rtol=1e-5, atol=1e-6)


def test_merged_does_not_touch_the_global_rng():
    model = PerLossAdapter(MLP(2, 1, width=8, depth=2, rwf=RWF()), num_losses=2, rank=2)
    state = torch.get_rng_state()
    model.merged()
    assert torch.equal(torch.get_rng_state(), state)


class _Quadratic(PINNModule):
    def losses(self, batch):
        (x,) = batch
        u = self(x)
        return {"a": (u - 1).pow(2).mean(), "b": (u + x[:, :1]).pow(2).mean()}


def test_loss_jacobian_covers_both_factors():
    trunk = MLP(2, 1, width=8, depth=2, rwf=RWF())
    module = _Quadratic(trunk, loss_names=("a", "b"), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=16)
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    names = [n for n, _ in trunk.named_parameters()]
    assert sum(n.endswith(S) for n in names) == sum(n.endswith(V) for n in names) == 3
    n_params = sum(p.numel() for p in trunk.parameters())  # s, V and the biases
    assert module.loss_jacobian.shape == (2, n_params)


def test_forward_mode_laplacian_reads_the_factorised_weight():
    model = PerLossAdapter(MLP(2, 1, width=8, depth=2, rwf=RWF()), num_losses=2, rank=2)
    with torch.no_grad():
        for k in range(2):
            for p in model.adapter_parameters(k):
                p.normal_(0.0, 0.3)
    x = torch.rand(10, 2, requires_grad=True)
    reverse = laplacian(model(x), x)
    torch.testing.assert_close(laplacian_fwd(model, x), reverse, rtol=1e-4, atol=1e-4)


def test_adapters_on_a_factorised_trunk_rebuild_with_another_rank():
    module = _Quadratic(MLP(2, 1, width=8, depth=2, rwf=RWF()), loss_names=("a", "b"), lr=1e-3)
    module.set_strategy("adapters", rank=2)
    with torch.no_grad():
        for p in module._all_adapter_parameters():
            p.normal_(0.0, 0.3)
    x = torch.randn(6, 2)
    before = module(x).detach()
    module.set_strategy("adapters", rank=4)  # fold into V (s kept), then new adapters
    assert module.model.rank == 4
    assert parametrize.is_parametrized(module.model.trunk.net[2].base_layer, "weight")
    torch.testing.assert_close(module(x).detach(), before, rtol=1e-5, atol=1e-6)
