"""Inverse problems: seeded noisy data, trainable coefficients that the residual moves."""

import pytest
import torch
from torch import nn

from lightning_pinn import problems
from lightning_pinn.problems.inverse import _NOISE_SEED_OFFSET

INVERSE = ["burgers_inverse", "heat_inverse", "poisson_inverse"]
SCALAR = {"burgers_inverse": "nu", "heat_inverse": "kappa"}


@pytest.mark.parametrize("name", INVERSE)
def test_data_depends_on_the_stated_seed_and_noise(name: str) -> None:
    a = problems.get(name).fixed_data()
    b = problems.get(name).fixed_data()
    c = problems.get(name, data_seed=1).fixed_data()
    torch.testing.assert_close(a["x_data"], b["x_data"])
    torch.testing.assert_close(a["u_data"], b["u_data"])
    assert not torch.allclose(a["u_data"], c["u_data"])
    assert not torch.allclose(a["x_data"], c["x_data"])

    problem = problems.get(name)
    clean = problem.reference(a["x_data"].double())[:, :1]
    noise = a["u_data"].double() - clean
    expected = problem.noise * clean.std()
    assert 0.8 * expected < noise.std() < 1.2 * expected  # n_data >= 500 samples
    gen = torch.Generator().manual_seed(problem.data_seed + _NOISE_SEED_OFFSET)
    eps = torch.randn(clean.shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(noise, problem.noise * clean.std() * eps, atol=1e-6, rtol=0)
    noiseless = problems.get(name, noise=0.0).fixed_data()["u_data"]
    torch.testing.assert_close(noiseless.double(), clean, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_coefficient_is_a_trainable_parameter_moved_by_the_residual(name: str) -> None:
    problem = problems.get(name)
    module = problem.module()
    coeff = module.coefficients[SCALAR[name]]
    assert isinstance(coeff, nn.Parameter) and coeff.requires_grad
    assert float(coeff) == pytest.approx(problem.unknowns()[SCALAR[name]])
    assert any(p is coeff for p in module.shared_parameters())
    batch = problem.datamodule(points={k: 128 for k in problem.point_sets()}).sample(0)
    losses = module.losses(batch)
    (g,) = torch.autograd.grad(losses["residual"], coeff)
    assert torch.isfinite(g) and float(g.abs()) > 0
    (g_data,) = torch.autograd.grad(losses["data"], coeff, allow_unused=True)
    assert g_data is None or float(g_data.abs()) == 0
    assert set(problem.true_values()) == set(problem.unknowns())


def test_poisson_inverse_field_is_the_second_output() -> None:
    problem = problems.get("poisson_inverse")
    assert problem.field_names == ("u", "a") and problem.output_dim == 2
    assert problem.unknowns() == {}
    ref = problem.reference(torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(ref, torch.tensor([[1.0, 1 / 2.0]]))
