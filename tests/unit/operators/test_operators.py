"""Every operator against plain ``torch.autograd.grad``: values and parameter gradients.

Trunks: a tanh MLP, the same wrapped in ``PerLossAdapter`` with random B factors (so the
adapters change the function; linear and nonlinear adapter forms), a SiLU/sigmoid
``nn.Sequential`` (all on the forward-mode fast path) and a sine network of unknown structure
(the reverse-mode fallback).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, autograd, nn

from lightning_pinn import PerLossAdapter
from lightning_pinn.networks import MLP
from lightning_pinn.operators import (
    divergence,
    gradient,
    hessian_diag,
    jacobian,
    jet,
    jet_layers,
    laplacian,
    laplacian_fwd,
    mixed,
)

D, M, N = 3, 2, 17
PAIRS = [(0, 0), (1, 1), (0, 2), (2, 1)]


class SineNet(nn.Module):
    """A network the jet does not know (custom forward): takes the reverse-mode path."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(D, 8), nn.Linear(8, M)

    def forward(self, x: Tensor) -> Tensor:
        return self.b(torch.sin(self.a(x)))


def _adapted(**options: object) -> nn.Module:
    model = PerLossAdapter(MLP(D, M, width=8, depth=3), num_losses=3, rank=2, **options)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)
    return model


TRUNKS = {
    "tanh_mlp": lambda: MLP(D, M, width=8, depth=3),
    "adapters": _adapted,
    "adapters_nonlinear": lambda: _adapted(form="nonlinear"),  # tanh branches, all K summed
    "adapters_nonlinear_mean": lambda: _adapted(
        form="nonlinear", mode="per_loss", predict_with="mean"
    ),
    "silu_sigmoid": lambda: nn.Sequential(
        nn.Linear(D, 8), nn.SiLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, M)
    ),
    "sine_generic": SineNet,
}
TOL = {torch.float64: {"rtol": 1e-6, "atol": 1e-9}, torch.float32: {"rtol": 1e-4, "atol": 1e-5}}


def _reference(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``u [N, m]``, ``J [N, m, d]``, ``H [N, m, d, d]`` by plain autograd.grad calls."""
    xg = x.clone().requires_grad_(True)
    u = net(xg)
    jac, hess = [], []
    for c in range(u.shape[1]):
        (g,) = autograd.grad(u[:, c].sum(), xg, create_graph=True)
        rows = [autograd.grad(g[:, i].sum(), xg, create_graph=True)[0] for i in range(D)]
        jac.append(g)
        hess.append(torch.stack(rows, dim=1))
    return u, torch.stack(jac, dim=1), torch.stack(hess, dim=1)


def _param_grads(net: nn.Module, value: Tensor) -> list[Tensor]:
    params = [p for p in net.parameters() if p.requires_grad]
    return list(
        autograd.grad(value.pow(2).sum(), params, allow_unused=True, materialize_grads=True)
    )


def _setup(name: str, dtype: torch.dtype) -> tuple[nn.Module, Tensor]:
    net = TRUNKS[name]().to(dtype)
    return net, torch.rand(N, D, dtype=dtype) * 2 - 1


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(TRUNKS))
def test_jet_matches_autograd(name: str, dtype: torch.dtype) -> None:
    net, x = _setup(name, dtype)
    assert (jet_layers(net) is None) == (name == "sine_generic")
    u, jac, hess = _reference(net, x)
    out = jet(net, x, second=PAIRS, laplacian=[0, 2])
    tol = TOL[dtype]
    torch.testing.assert_close(out.value, u, **tol)
    torch.testing.assert_close(out.first, jac, **tol)
    for i in range(D):
        torch.testing.assert_close(out.d(i), jac[:, :, i], **tol)
    for i, j in PAIRS:
        torch.testing.assert_close(out.d2(i, j), hess[:, :, i, j], **tol)
        torch.testing.assert_close(out.d2(j, i), hess[:, :, j, i], **tol)
    torch.testing.assert_close(out.laplacian, hess[:, :, 0, 0] + hess[:, :, 2, 2], **tol)
    # the derivatives are differentiable in the parameters, with the same gradient
    mine = out.first.sum((1, 2)) + out.second.sum((1, 2)) + out.laplacian.sum(1)
    ref = jac.sum((1, 2)) + sum(hess[:, :, i, j] for i, j in PAIRS).sum(1)
    ref = ref + (hess[:, :, 0, 0] + hess[:, :, 2, 2]).sum(1)
    for a, b in zip(_param_grads(net, mine), _param_grads(net, ref), strict=True):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("name", list(TRUNKS))
def test_jet_subsets_of_directions(name: str) -> None:
    net, x = _setup(name, torch.float64)
    _, jac, hess = _reference(net, x)
    out = jet(net, x, first=[2], second=[(1, 1)])
    assert out.first.shape == (N, M, 2) and out.directions == (1, 2)
    torch.testing.assert_close(out.d(2), jac[:, :, 2], **TOL[torch.float64])
    torch.testing.assert_close(out.d2(1, 1), hess[:, :, 1, 1], **TOL[torch.float64])
    only = jet(net, x, first=[0])
    assert out.laplacian is None and only.second.shape == (N, M, 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(TRUNKS))
def test_laplacian_fwd_matches_autograd(name: str, dtype: torch.dtype) -> None:
    net, x = _setup(name, dtype)
    head = nn.Sequential(net, nn.Linear(M, 1)).to(dtype)  # scalar output, still a known trunk
    u, _, hess = _reference(head, x)
    tol = TOL[dtype]
    for dims in (None, [1], [0, 2]):
        expected = hess[:, 0, :, :].diagonal(dim1=1, dim2=2)[:, dims or list(range(D))].sum(1)
        lap = laplacian_fwd(head, x, dims=dims)
        torch.testing.assert_close(lap, expected.unsqueeze(1), **tol)
    lap = laplacian_fwd(head, x)
    ref = hess[:, 0].diagonal(dim1=1, dim2=2).sum(1)
    for a, b in zip(_param_grads(head, lap), _param_grads(head, ref), strict=True):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(TRUNKS))
def test_reverse_operators_match_autograd(name: str, dtype: torch.dtype) -> None:
    net, x = _setup(name, dtype)
    _, jac, hess = _reference(net, x)
    tol = TOL[dtype]
    xg = x.clone().requires_grad_(True)
    u = net(xg)
    torch.testing.assert_close(jacobian(u, xg), jac, **tol)
    u0 = u[:, :1]
    g = gradient(u0, xg)
    torch.testing.assert_close(g, jac[:, 0], **tol)
    h0 = hess[:, 0]  # (N, d, d)
    torch.testing.assert_close(hessian_diag(u0, xg), h0.diagonal(dim1=1, dim2=2), **tol)
    torch.testing.assert_close(
        hessian_diag(u0, xg, dims=[2], grad=g), h0[:, 2, 2].unsqueeze(1), **tol
    )
    torch.testing.assert_close(mixed(u0, xg, 0, 2), h0[:, 0, 2].unsqueeze(1), **tol)
    torch.testing.assert_close(mixed(u0, xg, 2, 1, grad=g), h0[:, 2, 1].unsqueeze(1), **tol)
    lap = laplacian(u0, xg, [0, 1], grad=g)
    torch.testing.assert_close(lap, (h0[:, 0, 0] + h0[:, 1, 1]).unsqueeze(1), **tol)
    div = divergence(u, xg, dims=[2, 0])  # ∂u_0/∂x_2 + ∂u_1/∂x_0
    torch.testing.assert_close(div, (jac[:, 0, 2] + jac[:, 1, 0]).unsqueeze(1), **tol)
    mine = lap.sum() + div.sum() + mixed(u0, xg, 0, 2).sum()
    ref = (h0[:, 0, 0] + h0[:, 1, 1] + jac[:, 0, 2] + jac[:, 1, 0] + h0[:, 0, 2]).sum()
    for a, b in zip(_param_grads(net, mine), _param_grads(net, ref), strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_adapters_change_the_function_and_take_the_fast_path() -> None:
    adapted = _adapted().double()
    plain = adapted.merged()
    x = torch.rand(N, D, dtype=torch.float64)
    assert jet_layers(adapted) is not None
    torch.testing.assert_close(jet(adapted, x).value, adapted(x))
    torch.testing.assert_close(jet(plain, x).value, adapted(x))  # merged: same function
    base = PerLossAdapter(MLP(D, M, width=8, depth=3), num_losses=3, rank=2).double()
    assert not torch.allclose(base(x), adapted(x))


@pytest.mark.parametrize("form", ["linear", "nonlinear"])
def test_jet_follows_the_per_loss_scope(form: str) -> None:
    """Inside ``scope(k)`` the fast path uses adapter k only, as the network's forward does."""
    model = _adapted(form=form, mode="per_loss").double()
    x = torch.rand(N, D, dtype=torch.float64) * 2 - 1
    values = []
    for k in range(3):
        with model.scope(k):
            assert jet_layers(model) is not None
            u, jac, hess = _reference(model, x)
            out = jet(model, x, second=PAIRS)
        torch.testing.assert_close(out.value, u, **TOL[torch.float64])
        torch.testing.assert_close(out.first, jac, **TOL[torch.float64])
        for i, j in PAIRS:
            torch.testing.assert_close(out.d2(i, j), hess[:, :, i, j], **TOL[torch.float64])
        values.append(out.value)
    assert not torch.allclose(values[0], values[1])  # the scopes select different functions


def test_unknown_structures_fall_back() -> None:
    mlp = MLP(D, 1, width=8, depth=2)
    assert jet_layers(lambda y: mlp(y)) is None
    assert jet_layers(nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, 1))) is None
    assert jet_layers(nn.Sequential(mlp, nn.Identity())) is not None


def test_bad_coordinates_are_rejected() -> None:
    net, x = _setup("tanh_mlp", torch.float64)
    with pytest.raises(ValueError, match="coordinates of x"):
        jet(net, x, second=[(0, D)])
    with pytest.raises(ValueError, match="coordinates of x"):
        jet(net, x, first=[-1])
    with pytest.raises(ValueError, match="at least one"):
        jet(net, x, laplacian=[])
    with pytest.raises(ValueError, match=r"\[N, m\]"):
        jacobian(torch.zeros(N), x)
    with pytest.raises(ValueError, match="one coordinate per column"):
        divergence(torch.zeros(N, 2), x, dims=[0])
