"""1D coupled linear thermoelasticity with a manufactured solution (K = 4)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from lightning_pinn.data import Box, BoxBoundary, PointSet
from lightning_pinn.operators import gradient, hessian_diag, jacobian
from lightning_pinn.problems._base import Problem, ProblemModule
from lightning_pinn.problems._common import check_positive, grid, mse, shared_forward_losses

__all__ = ["Thermoelastic"]

_DOMAIN = Box((0.0, 0.0), (1.0, 1.0))


@dataclasses.dataclass
class Thermoelastic(Problem):
    """Coupled linear thermoelasticity in 1D (multi-physics, K = 4).

    PDEs on ``(x, t) ∈ [0, 1]²`` for the displacement ``u`` and the temperature ``θ``:

    - momentum: ``u_tt = c² u_xx - γ θ_x + f_u``;
    - energy: ``θ_t = κ θ_xx - η u_xt + f_θ``;

    with ``c = 1``, ``γ = 0.5`` (thermal stress), ``κ = 0.1``, ``η = 0.5`` (thermoelastic
    dissipation). The manufactured solution ``u* = sin(πx) cos(2πt)``,
    ``θ* = e^{-t} sin(πx)`` gives the closed-form sources
    ``f_u = (c² - 4) π² u* + γ π e^{-t} cos(πx)`` and
    ``f_θ = (κπ² - 1) θ* - 2ηπ² cos(πx) sin(2πt)``.
    Initial conditions ``u = sin(πx)``, ``u_t = 0``, ``θ = sin(πx)``; boundary
    ``u = θ = 0`` at ``x = 0, 1``.
    Losses: ``momentum``, ``energy`` (mean squared residuals), ``initial`` (sum of the mean
    squared misfits of ``u``, ``u_t`` and ``θ`` at t = 0), ``boundary`` (mean squared ``u``
    and ``θ`` over both ends). Reference (exact): columns ``(u*, θ*)`` on a 128 × 128 grid.
    Inputs ``(x, t)``; outputs ``u``, ``theta``.
    """

    name = "thermoelastic"
    loss_names = ("momentum", "energy", "initial", "boundary")
    input_dim = 2
    output_dim = 2
    field_names = ("u", "theta")
    coordinate_names = ("x", "t")

    c: float = 1.0
    gamma: float = 0.5
    kappa: float = 0.1
    eta: float = 0.5
    n_residual: int = 2000
    n_initial: int = 200
    n_boundary: int = 200

    def validate(self) -> None:
        check_positive(self.name, c=self.c, kappa=self.kappa)

    def point_sets(self) -> dict[str, PointSet]:
        return {
            "residual": PointSet(_DOMAIN, self.n_residual),
            "initial": PointSet(Box((0.0, 0.0), (1.0, 0.0)), self.n_initial),
            "boundary": PointSet(BoxBoundary(_DOMAIN, (0,)), self.n_boundary),
        }

    def sources(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """The manufactured sources ``(f_u, f_θ)``, each ``[N, 1]``."""
        x, t = points[:, :1], points[:, 1:2]
        pi = math.pi
        ref = self.reference(points)
        f_u = (self.c**2 - 4) * pi**2 * ref[:, :1] + self.gamma * pi * torch.exp(-t) * torch.cos(
            pi * x
        )
        f_theta = (self.kappa * pi**2 - 1) * ref[:, 1:2] - 2 * self.eta * pi**2 * torch.cos(
            pi * x
        ) * torch.sin(2 * pi * t)
        return f_u, f_theta

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"].requires_grad_(True)

        def residuals() -> dict[str, Tensor]:  # two losses from one forward
            out = module(xt)
            du, dth = jacobian(out, xt).unbind(dim=1)  # (N, 2) each: (u_x, u_t), (θ_x, θ_t)
            du_x = gradient(du[:, :1], xt)  # (N, 2): u_xx, u_xt from one pass
            u_tt = hessian_diag(out[:, :1], xt, dims=[1], grad=du)
            th_xx = hessian_diag(out[:, 1:2], xt, dims=[0], grad=dth)
            f_u, f_theta = self.sources(xt.detach())
            momentum = u_tt - self.c**2 * du_x[:, :1] + self.gamma * dth[:, :1] - f_u
            energy = dth[:, 1:2] - self.kappa * th_xx + self.eta * du_x[:, 1:2] - f_theta
            return {
                "momentum": self.residual_loss(module, momentum, xt),
                "energy": self.residual_loss(module, energy, xt),
            }

        losses = shared_forward_losses(module, ("momentum", "energy"), residuals)
        x0 = batch["initial"].requires_grad_(True)
        out0 = module(x0, loss="initial")
        u0_t = gradient(out0[:, :1], x0)[:, 1:2]
        initial = mse(out0 - self.reference(x0.detach())) * 2 + mse(u0_t)  # u, θ, u_t
        return {
            **losses,
            "initial": initial,
            "boundary": mse(module(batch["boundary"], loss="boundary")),
        }

    def reference(self, points: Tensor) -> Tensor:
        x, t = points[:, :1], points[:, 1:2]
        u = torch.sin(math.pi * x) * torch.cos(2 * math.pi * t)
        theta = torch.exp(-t) * torch.sin(math.pi * x)
        return torch.cat([u, theta], dim=1)

    def eval_points(self) -> Tensor:
        return grid((0.0, 0.0), (1.0, 1.0), (128, 128))
