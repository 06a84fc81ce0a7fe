"""The forward-mode Laplacian: exact, differentiable in the parameters, any subset of dims."""

import pytest
import torch

from lightning_pinn.networks import MLP
from lightning_pinn.operators import laplacian, laplacian_fwd


@pytest.mark.parametrize("d", [1, 3, 12])
def test_matches_the_reverse_mode_laplacian(d: int) -> None:
    net = MLP(d, 1, width=16, depth=2).double()
    x = torch.rand(20, d, dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(laplacian_fwd(net, x), laplacian(net(xg), xg))
    dims = list(range(0, d, 2))
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(laplacian_fwd(net, x, dims=dims), laplacian(net(xg), xg, dims))


@pytest.mark.parametrize("d", [1, 5])
def test_generic_path_matches_the_reverse_mode_laplacian(d: int) -> None:
    net = MLP(d, 1, width=16, depth=2).double()
    x = torch.rand(20, d, dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    wrapped = lambda y: net(y)  # noqa: E731 - not an MLP: takes the vmap path
    torch.testing.assert_close(laplacian_fwd(wrapped, x), laplacian(net(xg), xg))
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(laplacian_fwd(wrapped, x, dims=[0]), laplacian(net(xg), xg, [0]))
    loss = laplacian_fwd(wrapped, x).pow(2).mean()
    assert net.net[0].weight in [p for p in net.parameters()] and loss.requires_grad


def test_is_differentiable_with_respect_to_the_parameters() -> None:
    net = MLP(4, 1, width=16, depth=2).double()
    x = torch.rand(10, 4, dtype=torch.float64)
    loss = laplacian_fwd(net, x).pow(2).mean()
    grads = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    # against the reverse-mode Laplacian's parameter gradient
    xg = x.clone().requires_grad_(True)
    ref = torch.autograd.grad(
        laplacian(net(xg), xg).pow(2).mean(), list(net.parameters()), allow_unused=True
    )
    for a, b in zip(grads, ref, strict=True):
        if a is not None and b is not None:
            torch.testing.assert_close(a, b)


def test_rejects_bad_dims() -> None:
    with pytest.raises(ValueError, match="dims"):
        laplacian_fwd(lambda x: x.sum(1, keepdim=True), torch.zeros(2, 3), dims=[3])
