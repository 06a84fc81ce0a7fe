"""The per-loss adapter design (issue 15): scopes, predictions, merged(k), placement, form."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from lightning_pinn.adapters import AdapterLinear, PerLossAdapter
from lightning_pinn.operators import laplacian_fwd
from lightning_pinn.operators._jet import jet_layers


def _trunk() -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
        nn.Linear(8, 1),
    )  # fmt: skip


def _perturbed(model: PerLossAdapter, scale: float = 0.3) -> PerLossAdapter:
    """Non-zero B factors, so every adapter changes the function."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for k in range(model.num_losses):
            for p in model.adapter_parameters(k):
                p.add_(scale * torch.randn(p.shape, generator=gen))
    return model


def _plain_with(model: PerLossAdapter, k: int) -> nn.Module:
    """Reference: a copy of the trunk whose layers carry only adapter k, computed by hand."""
    plain = model.merged("trunk")
    layers = [m for m in model.trunk.modules() if isinstance(m, AdapterLinear)]
    targets = [m for m in plain.modules() if isinstance(m, nn.Linear)]
    by_name = dict(plain.named_modules())
    with torch.no_grad():
        for name, layer in zip(model.adapted_layer_names, layers, strict=True):
            delta = layer.scaling * (layer.lora_B[k] @ layer.lora_A[k])
            by_name[name].weight.add_(delta)
    assert targets
    return plain


@pytest.mark.parametrize("mode", ["summed", "per_loss"])
@pytest.mark.parametrize("form", ["linear", "nonlinear"])
def test_function_unchanged_at_insertion(mode, form):
    trunk = _trunk()
    x = torch.randn(16, 2)
    before = trunk(x)
    model = PerLossAdapter(trunk, num_losses=3, rank=2, mode=mode, form=form)
    assert torch.equal(model(x), before)
    for k in range(3):
        with model.scope(k):
            assert torch.equal(model(x), before)


def test_scope_uses_adapter_k_only():
    model = _perturbed(PerLossAdapter(_trunk(), num_losses=3, rank=2, mode="per_loss"))
    x = torch.randn(16, 2)
    for k in range(3):
        with model.scope(k):
            out = model(x)
        torch.testing.assert_close(out, _plain_with(model, k)(x))
        other = (k + 1) % 3
        with torch.no_grad():  # perturbing adapter j != k leaves u_k bitwise unchanged
            model.adapter_parameters(other)[1].add_(1.0)
        with model.scope(k):
            assert torch.equal(model(x), out)


def test_summed_mode_ignores_scopes_and_keeps_the_summed_function():
    model = _perturbed(PerLossAdapter(_trunk(), num_losses=3, rank=2))
    x = torch.randn(16, 2)
    with model.scope(1):
        scoped = model(x)
    assert torch.equal(scoped, model(x))
    torch.testing.assert_close(model(x), model.merged()(x))


def test_predictions_and_merged():
    model = _perturbed(PerLossAdapter(_trunk(), num_losses=3, rank=2, mode="per_loss"))
    x = torch.randn(16, 2)
    residual = _plain_with(model, 0)(x)
    torch.testing.assert_close(model(x), residual)  # predict_with="residual": adapter 0
    torch.testing.assert_close(model.merged()(x), residual)
    for k in range(3):
        torch.testing.assert_close(model.merged(k)(x), _plain_with(model, k)(x))
    assert torch.equal(model.merged("trunk")(x), model.merged("trunk")(x))
    model.set_predict_with("trunk")
    torch.testing.assert_close(model(x), model.merged("trunk")(x))
    model.set_predict_with("mean")
    mean = model(x)
    torch.testing.assert_close(mean, model.merged("mean")(x))
    # the mean adapter's weight is W + s/K sum_k B_k A_k
    layer = next(m for m in model.trunk.modules() if isinstance(m, AdapterLinear))
    a_cat, b_cat = layer._factors()
    expected = layer.base_layer.weight + layer.scaling / 3 * (b_cat @ a_cat)
    torch.testing.assert_close(layer.effective_weight(), expected)


def test_merged_one_adapter_of_the_summed_design():
    model = _perturbed(PerLossAdapter(_trunk(), num_losses=2, rank=2))
    x = torch.randn(8, 2)
    torch.testing.assert_close(model.merged(1)(x), _plain_with(model, 1)(x))


def test_nonlinear_branch():
    model = _perturbed(
        PerLossAdapter(_trunk(), num_losses=2, rank=2, mode="per_loss", form="nonlinear")
    )
    x = torch.randn(8, 2)
    layer = next(m for m in model.trunk.modules() if isinstance(m, AdapterLinear))
    h = torch.randn(5, layer.in_features)
    layer.active = 1
    branch = torch.tanh(h @ layer.lora_A[1].T) @ layer.lora_B[1].T
    torch.testing.assert_close(layer(h), layer.base_layer(h) + layer.scaling * branch)
    layer.active = 0
    with pytest.raises(ValueError, match="cannot be folded"):
        model.merged()
    with pytest.raises(ValueError, match="cannot be folded"):
        model.merged(1)
    torch.testing.assert_close(model.merged("trunk")(x), _trunk_only(model)(x))
    assert jet_layers(model) is not None  # the forward-mode jet handles the tanh branch


def _trunk_only(model: PerLossAdapter) -> nn.Module:
    model.set_predict_with("trunk")
    return model


def test_last_layers_placement():
    model = PerLossAdapter(_trunk(), num_losses=2, rank=2, target="last:2")
    assert model.adapted_layer_names == ["2", "4"]  # the 8 -> 1 head is too narrow for r=2
    one = PerLossAdapter(_trunk(), num_losses=2, rank=1, target="last:1")
    assert one.adapted_layer_names == ["6"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "sum"}, "mode must be one of"),
        ({"form": "mlp"}, "form must be one of"),
        ({"predict_with": "best"}, "predict_with must be one of"),
        ({"predict_with": 5}, "predict_with must be one of"),
        ({"rank": 3, "target": ["7"]}, "target names \\['7'\\], which are not nn.Linear layers"),
        ({"target": "last:0"}, "must be >= 1"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PerLossAdapter(_trunk(), num_losses=2, **{"rank": 2, **kwargs})


def test_jet_path_equals_autograd_under_per_loss_scopes():
    model = _perturbed(PerLossAdapter(_trunk(), num_losses=3, rank=2, mode="per_loss"))
    x = torch.randn(12, 2, dtype=torch.float64)
    model = model.double()
    for k in (None, 0, 2):
        with model.scope(k) if k is not None else contextlib.nullcontext():
            fast = laplacian_fwd(model, x)
        xr = x.clone().requires_grad_(True)
        if k is not None:
            with model.scope(k):
                u = model(xr)
        else:
            u = model(xr)
        (g,) = torch.autograd.grad(u.sum(), xr, create_graph=True)
        lap = sum(
            torch.autograd.grad(g[:, i].sum(), xr, retain_graph=True)[0][:, i] for i in (0, 1)
        )
        torch.testing.assert_close(fast.reshape(-1), lap.reshape(-1))
