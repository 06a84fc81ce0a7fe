"""Incompressible Navier–Stokes: Kovasznay flow (K = 5) and a Taylor–Green flow with heat
transport (K = 6)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from lightning_pinn.data import Box, BoxBoundary, PointSet
from lightning_pinn.operators import divergence, jacobian
from lightning_pinn.problems._base import Problem, ProblemModule
from lightning_pinn.problems._common import check_positive, grid, mse, shared_forward_losses

__all__ = ["Kovasznay", "ThermalFlow"]


def _laplacian_2d(first: Tensor, x: Tensor) -> Tensor:
    """``f_xx + f_yy`` from the first derivatives ``first = [f_x, f_y, ...]`` (2 passes)."""
    return divergence(first[:, :2], x, dims=[0, 1])


@dataclasses.dataclass
class Kovasznay(Problem):
    """Steady incompressible Navier–Stokes, exact Kovasznay (1948) flow (K = 5).

    PDEs on ``[-0.5, 1] × [-0.5, 1.5]`` with ``Re = 40``:
    ``u u_x + v u_y + p_x - (u_xx + u_yy)/Re = 0``,
    ``u v_x + v v_y + p_y - (v_xx + v_yy)/Re = 0``, ``u_x + v_y = 0``.
    Exact solution with ``λ = Re/2 - sqrt(Re²/4 + 4π²)``: ``u = 1 - e^{λx} cos(2πy)``,
    ``v = λ/(2π) e^{λx} sin(2πy)``, ``p = (1 - e^{2λx}) / 2``.
    Losses: ``momentum_x``, ``momentum_y``, ``continuity`` (mean squared residuals),
    ``boundary`` (mean squared velocity misfit ``(u, v)`` on the whole boundary),
    ``pressure`` (mean squared misfit of ``p`` on the outlet ``x = 1``, which fixes the
    pressure's additive constant). Reference: ``(u, v, p)`` on a 128 × 128 grid.
    Inputs ``(x, y)``; outputs ``u``, ``v``, ``p``.
    """

    name = "kovasznay"
    loss_names = ("momentum_x", "momentum_y", "continuity", "boundary", "pressure")
    input_dim = 2
    output_dim = 3
    field_names = ("u", "v", "p")
    coordinate_names = ("x", "y")

    re: float = 40.0
    n_residual: int = 2000
    n_boundary: int = 400
    n_pressure: int = 100

    def validate(self) -> None:
        check_positive(self.name, re=self.re)

    def point_sets(self) -> dict[str, PointSet]:
        domain = Box((-0.5, -0.5), (1.0, 1.5))
        return {
            "residual": PointSet(domain, self.n_residual),
            "boundary": PointSet(BoxBoundary(domain, (0, 1)), self.n_boundary),
            "pressure": PointSet(Box((1.0, -0.5), (1.0, 1.5)), self.n_pressure),
        }

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xy = batch["residual"].requires_grad_(True)

        def residuals() -> dict[str, Tensor]:  # three losses from one forward
            out = module(xy)
            u, v = out[:, :1], out[:, 1:2]
            du, dv, dp = jacobian(out, xy).unbind(dim=1)  # (N, 2) each: one pass per field
            mom_x = u * du[:, :1] + v * du[:, 1:2] + dp[:, :1] - _laplacian_2d(du, xy) / self.re
            mom_y = u * dv[:, :1] + v * dv[:, 1:2] + dp[:, 1:2] - _laplacian_2d(dv, xy) / self.re
            return {
                "momentum_x": self.residual_loss(module, mom_x, xy),
                "momentum_y": self.residual_loss(module, mom_y, xy),
                "continuity": self.residual_loss(module, du[:, :1] + dv[:, 1:2], xy),
            }

        losses = shared_forward_losses(
            module, ("momentum_x", "momentum_y", "continuity"), residuals
        )
        xb, xp = batch["boundary"], batch["pressure"]
        return {
            **losses,
            "boundary": mse(module(xb, loss="boundary")[:, :2] - self.reference(xb)[:, :2]),
            "pressure": mse(module(xp, loss="pressure")[:, 2:] - self.reference(xp)[:, 2:]),
        }

    def reference(self, points: Tensor) -> Tensor:
        x, y = points[:, :1], points[:, 1:2]
        lam = self.re / 2 - math.sqrt(self.re**2 / 4 + 4 * math.pi**2)
        e = torch.exp(lam * x)
        u = 1 - e * torch.cos(2 * math.pi * y)
        v = lam / (2 * math.pi) * e * torch.sin(2 * math.pi * y)
        p = 0.5 * (1 - e**2)
        return torch.cat([u, v, p], dim=1)

    def eval_points(self) -> Tensor:
        return grid((-0.5, -0.5), (1.0, 1.5), (128, 128))


@dataclasses.dataclass
class ThermalFlow(Problem):
    """Unsteady 2D Navier–Stokes with Boussinesq heat transport, manufactured (K = 6).

    PDEs on ``(x, y) ∈ [0, π]²``, ``t ∈ [0, 1]``, with ``ν = 0.01``, ``α = 0.01``, ``Ri = 1``:

    - ``u_t + u u_x + v u_y + p_x - ν Δu = 0``;
    - ``v_t + u v_x + v v_y + p_y - ν Δv - Ri T = q_v``;
    - ``u_x + v_y = 0``;
    - ``T_t + u T_x + v T_y - α ΔT = q_T``.

    Manufactured solution: the Taylor–Green vortex ``u = -cos x sin y F``,
    ``v = sin x cos y F``, ``p = -(cos 2x + cos 2y) F² / 4`` with ``F = e^{-2νt}`` (exact
    for Navier–Stokes without forcing), and the decaying temperature mode
    ``T = sin x sin y G``, ``G = e^{-2αt}``. Sources: ``q_v = -Ri T`` (cancels the
    buoyancy of the exact T) and ``q_T = F G (sin² x - sin² y)`` (its advection).
    Losses: ``momentum_x``, ``momentum_y``, ``continuity``, ``energy`` (mean squared
    residuals); ``initial`` (mean squared misfit of ``u, v, T`` at t = 0); ``boundary``
    (mean squared misfit of ``u, v, p, T`` on the four sides; ``p`` there fixes its gauge).
    Reference: ``(u, v, p, T)`` on 32 × 32 × 11 grid points. Inputs ``(x, y, t)``.
    """

    name = "thermal_flow"
    loss_names = ("momentum_x", "momentum_y", "continuity", "energy", "initial", "boundary")
    input_dim = 3
    output_dim = 4
    field_names = ("u", "v", "p", "T")
    coordinate_names = ("x", "y", "t")

    nu: float = 0.01
    alpha: float = 0.01
    richardson: float = 1.0
    n_residual: int = 1000
    n_initial: int = 200
    n_boundary: int = 200

    def validate(self) -> None:
        check_positive(self.name, nu=self.nu, alpha=self.alpha)

    def point_sets(self) -> dict[str, PointSet]:
        pi = math.pi
        domain = Box((0.0, 0.0, 0.0), (pi, pi, 1.0))
        return {
            "residual": PointSet(domain, self.n_residual),
            "initial": PointSet(Box((0.0, 0.0, 0.0), (pi, pi, 0.0)), self.n_initial),
            "boundary": PointSet(BoxBoundary(domain, (0, 1)), self.n_boundary),
        }

    def sources(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """The manufactured sources ``(q_v, q_T)``, each ``[N, 1]``."""
        x, y, t = points[:, :1], points[:, 1:2], points[:, 2:3]
        ref = self.reference(points)
        decay = torch.exp(-2 * (self.nu + self.alpha) * t)  # F G
        q_t = decay * (torch.sin(x) ** 2 - torch.sin(y) ** 2)
        return -self.richardson * ref[:, 3:4], q_t

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xyt = batch["residual"].requires_grad_(True)

        def residuals() -> dict[str, Tensor]:  # four losses from one forward
            out = module(xyt)
            u, v, temp = out[:, :1], out[:, 1:2], out[:, 3:4]
            du, dv, dp, dT = jacobian(out, xyt).unbind(dim=1)  # (N, 3) each: one pass per field

            def transport(d: Tensor) -> Tensor:  # f_t + u f_x + v f_y
                return d[:, 2:3] + u * d[:, :1] + v * d[:, 1:2]

            q_v, q_t = self.sources(xyt.detach())
            mom_x = transport(du) + dp[:, :1] - self.nu * _laplacian_2d(du, xyt)
            mom_y = (
                transport(dv)
                + dp[:, 1:2]
                - self.nu * _laplacian_2d(dv, xyt)
                - self.richardson * temp
                - q_v
            )
            energy = transport(dT) - self.alpha * _laplacian_2d(dT, xyt) - q_t
            return {
                "momentum_x": self.residual_loss(module, mom_x, xyt),
                "momentum_y": self.residual_loss(module, mom_y, xyt),
                "continuity": self.residual_loss(module, du[:, :1] + dv[:, 1:2], xyt),
                "energy": self.residual_loss(module, energy, xyt),
            }

        names = ("momentum_x", "momentum_y", "continuity", "energy")
        losses = shared_forward_losses(module, names, residuals)
        x0, xb = batch["initial"], batch["boundary"]
        initial = module(x0, loss="initial")[:, [0, 1, 3]] - self.reference(x0)[:, [0, 1, 3]]
        return {
            **losses,
            "initial": mse(initial),
            "boundary": mse(module(xb, loss="boundary") - self.reference(xb)),
        }

    def reference(self, points: Tensor) -> Tensor:
        x, y, t = points[:, :1], points[:, 1:2], points[:, 2:3]
        f = torch.exp(-2 * self.nu * t)
        u = -torch.cos(x) * torch.sin(y) * f
        v = torch.sin(x) * torch.cos(y) * f
        p = -0.25 * (torch.cos(2 * x) + torch.cos(2 * y)) * f**2
        temp = torch.sin(x) * torch.sin(y) * torch.exp(-2 * self.alpha * t)
        return torch.cat([u, v, p, temp], dim=1)

    def eval_points(self) -> Tensor:
        return grid((0.0, 0.0, 0.0), (math.pi, math.pi, 1.0), (32, 32, 11))
