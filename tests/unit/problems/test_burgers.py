import math

import numpy as np
import pytest
import torch

from lightning_pinn import problems
from lightning_pinn.problems.burgers import burgers_solution

NU = 0.01 / math.pi


def _fd_solution(t_end: float, nx: int = 2001) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: conservative central finite differences + RK4 in time."""
    x = np.linspace(-1.0, 1.0, nx)
    dx = x[1] - x[0]
    u = -np.sin(np.pi * x)
    dt = 0.2 * dx * dx / NU
    steps = int(np.ceil(t_end / dt))
    dt = t_end / steps

    def rhs(v):
        out = np.zeros_like(v)
        f = 0.5 * v * v
        out[1:-1] = -(f[2:] - f[:-2]) / (2 * dx) + NU * (v[2:] - 2 * v[1:-1] + v[:-2]) / dx**2
        return out

    for _ in range(steps):
        k1 = rhs(u)
        k2 = rhs(u + 0.5 * dt * k1)
        k3 = rhs(u + 0.5 * dt * k2)
        k4 = rhs(u + dt * k3)
        u = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x, u


@pytest.mark.parametrize("t_end,tol", [(0.25, 1e-5), (0.5, 2e-3)])
def test_reference_matches_finite_differences(t_end, tol):
    x, u_fd = _fd_solution(t_end)
    pts = torch.tensor(np.stack([x, np.full_like(x, t_end)], axis=1))
    u = burgers_solution(pts).numpy()[:, 0]
    assert np.linalg.norm(u - u_fd) / np.linalg.norm(u_fd) < tol


def test_reference_reproduces_steepest_slope_check_value():
    # Basdevant et al. (1986): max |u_x| = 152.00516 at x = 0, t = 1.60369 / pi.
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    t = torch.full((1,), 1.60369 / math.pi, dtype=torch.float64)
    u = burgers_solution(torch.stack([x, t], dim=1))
    (u_x,) = torch.autograd.grad(u.sum(), x)
    assert abs(u_x.item()) == pytest.approx(152.00516, abs=5e-4)


def test_initial_and_boundary_values():
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)
    u0 = burgers_solution(torch.stack([x, torch.zeros_like(x)], 1))[:, 0]
    torch.testing.assert_close(u0, -torch.sin(math.pi * x))
    t = torch.linspace(0.01, 1, 7, dtype=torch.float64)
    for side in (-1.0, 1.0):
        ub = burgers_solution(torch.stack([torch.full_like(t, side), t], 1))
        assert ub.abs().max() < 1e-10


def test_registry_and_problem_shape():
    assert "burgers" in problems.names()
    p = problems.get("burgers")
    assert p.loss_names == ("residual", "initial", "boundary")
    assert (p.input_dim, p.output_dim) == (2, 1)
    out = p.reference(torch.rand(5, 2))
    assert out.shape == (5, 1)


def test_exact_solution_gives_tiny_losses():
    p = problems.get("burgers")

    class Exact(torch.nn.Module):
        def forward(self, x):
            return burgers_solution(x)

    module = p.module(trunk=Exact()).double()
    module.model.register_parameter("dummy", torch.nn.Parameter(torch.zeros(())))
    batch = {k: v.double() for k, v in p.datamodule().sample(0).items()}
    batch["residual"] = batch["residual"][batch["residual"][:, 1] < 0.25]  # away from the shock
    exact = module.losses(batch)
    random = (
        problems.get("burgers")
        .module()
        .double()
        .losses({k: v.double() for k, v in p.datamodule().sample(0).items()})
    )
    for name in p.loss_names:
        assert float(exact[name]) <= 1e-8 * float(random[name]) + 1e-20


def test_unknown_problem_lists_close_matches():
    with pytest.raises(ValueError, match="burgers"):
        problems.get("burger")
