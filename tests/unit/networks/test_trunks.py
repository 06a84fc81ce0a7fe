"""Properties every trunk has: shapes, adapters wrap it unchanged, merged() is exact, YAML."""

from __future__ import annotations

import jsonargparse
import pytest
import torch
from _trunks import D_IN, D_OUT, TRUNKS
from torch import nn

from lightning_pinn.adapters import AdapterLinear, PerLossAdapter
from lightning_pinn.networks import MLP, RWF, FourierFeatures, ModifiedMLP, PirateNet

K = 3


@pytest.fixture(params=sorted(TRUNKS))
def trunk(request) -> nn.Module:
    return TRUNKS[request.param]()


def _randomise_adapters(model: PerLossAdapter) -> None:
    with torch.no_grad():
        for k in range(K):
            for p in model.adapter_parameters(k):
                p.normal_(0.0, 0.3)


def test_shapes(trunk):
    assert trunk(torch.randn(11, D_IN)).shape == (11, D_OUT)
    assert trunk(torch.randn(1, D_IN)).shape == (1, D_OUT)


def test_adapters_leave_the_function_unchanged_at_insertion(trunk):
    x = torch.randn(9, D_IN)
    before = trunk(x).detach()
    model = PerLossAdapter(trunk, num_losses=K, rank=2)
    assert len(model.adapted_layer_names) >= 2
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)


def test_merged_is_exact(trunk):
    x = torch.randn(9, D_IN)
    before = trunk(x).detach()
    model = PerLossAdapter(trunk, num_losses=K, rank=2)
    _randomise_adapters(model)
    wrapped = model(x).detach()
    assert (wrapped - before).abs().max() > 1e-3  # the adapters change the function
    merged = model.merged()
    assert not any(isinstance(m, AdapterLinear) for m in merged.modules())
    assert all(type(m) is nn.Linear for m in merged.modules() if isinstance(m, nn.Linear))
    torch.testing.assert_close(merged(x), wrapped, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x), wrapped, rtol=0, atol=0)  # the wrapper is intact


def test_shared_parameters_are_the_trunk_parameters(trunk):
    names = [n for n, p in trunk.named_parameters()]
    model = PerLossAdapter(trunk, num_losses=K, rank=2)
    shared = model.shared_parameters()
    assert len(shared) == len(names)
    adapters = {id(p) for k in range(K) for p in model.adapter_parameters(k)}
    assert not adapters & {id(p) for p in shared}


@pytest.mark.parametrize(
    ("class_path", "cls"),
    [
        ("lightning_pinn.networks.MLP", MLP),
        ("lightning_pinn.networks.ModifiedMLP", ModifiedMLP),
        ("lightning_pinn.networks.PirateNet", PirateNet),
    ],
)
def test_built_from_a_class_path(class_path, cls):
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--trunk", type=nn.Module)
    config = {
        "trunk": {
            "class_path": class_path,
            "init_args": {
                "in_dim": 2,
                "out_dim": 1,
                "width": 16,
                "depth": 2,
                "embedding": {
                    "class_path": "lightning_pinn.networks.FourierFeatures",
                    "init_args": {"in_dim": 2, "out_dim": 32, "sigma": 3.0},
                },
                "rwf": {"mean": 0.5, "std": 0.2},
            },
        }
    }
    trunk = parser.instantiate(parser.parse_object(config)).trunk
    assert type(trunk) is cls
    assert isinstance(trunk.embedding if cls is not MLP else trunk.net[0], FourierFeatures)
    factorised = [m for m in trunk.modules() if isinstance(m, nn.Linear)]
    assert all(m.parametrizations.weight[0].mean == 0.5 for m in factorised)
    assert trunk(torch.zeros(4, 2)).shape == (4, 1)


def test_class_path_with_a_misspelled_argument_fails():
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--trunk", type=nn.Module)
    config = {
        "trunk": {
            "class_path": "lightning_pinn.networks.ModifiedMLP",
            "init_args": {"in_dim": 2, "out_dim": 1, "widht": 16},
        }
    }
    with pytest.raises(jsonargparse.ArgumentError, match="widht"):
        parser.parse_object(config)


@pytest.mark.parametrize("cls", [MLP, ModifiedMLP, PirateNet])
def test_activation_by_name_or_factory_and_clear_errors(cls):
    x = torch.randn(5, 2)
    by_name = cls(2, 1, width=8, depth=1, activation="silu")
    assert any(isinstance(m, nn.SiLU) for m in by_name.modules())
    assert not any(isinstance(m, nn.Tanh) for m in by_name.modules())
    assert by_name(x).shape == (5, 1)
    with pytest.raises(ValueError, match=f"{cls.__name__} activation 'swish' is not known"):
        cls(2, 1, width=8, depth=1, activation="swish")
    with pytest.raises(TypeError, match=r"not torch.nn.Tanh\(\)"):  # an instance, not a factory
        cls(2, 1, width=8, depth=1, activation=nn.Tanh())


@pytest.mark.parametrize("cls", [MLP, ModifiedMLP, PirateNet])
@pytest.mark.parametrize("sizes", [(0, 1, 8, 2), (2, 0, 8, 2), (2, 1, 0, 2), (2, 1, 8, 0)])
def test_sizes_below_one_raise(cls, sizes):
    with pytest.raises(ValueError, match="sizes must be integers >= 1"):
        cls(*sizes)


@pytest.mark.parametrize("cls", [MLP, ModifiedMLP, PirateNet])
def test_embedding_for_another_input_dimension_raises(cls):
    with pytest.raises(ValueError, match="build the embedding with in_dim=2"):
        cls(2, 1, embedding=FourierFeatures(3, 16))
    with pytest.raises(TypeError, match="Embedding"):
        cls(2, 1, embedding=nn.Linear(2, 16))


def test_rwf_option_factorises_every_layer():
    net = ModifiedMLP(2, 1, width=8, depth=2, rwf=RWF())
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 5  # two encoders, two hidden layers, the head
    assert all(hasattr(m, "parametrizations") for m in linears)
