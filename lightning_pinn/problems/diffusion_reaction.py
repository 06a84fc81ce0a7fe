"""Diffusion–reaction: the Fisher–KPP equation with its exact travelling wave."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from lightning_pinn.data import Box, BoxBoundary, PointSet
from lightning_pinn.operators import gradient, hessian_diag
from lightning_pinn.problems._base import ProblemModule
from lightning_pinn.problems._common import check_positive, grid, mse
from lightning_pinn.problems._time_dependent import TimeDependentProblem

__all__ = ["DiffusionReaction"]


@dataclasses.dataclass
class DiffusionReaction(TimeDependentProblem):
    """Fisher–KPP diffusion–reaction equation (forward, K = 3).

    PDE: ``u_t = D u_xx + ρ u (1 - u)`` with ``D = 0.01``, ``ρ = 5`` on ``x ∈ [-1, 1]``,
    ``t ∈ [0, 1]``. Reference (exact, Ablowitz & Zeppetella 1979): the travelling wave
    ``u = (1 + exp(κ x - 5ρt/6))^{-2}`` with ``κ = sqrt(ρ / (6D))`` (front speed
    ``5ρ / (6κ) ≈ 0.46``), valid for any ``D, ρ > 0``. Initial condition ``u(x, 0)`` and
    Dirichlet boundary values at ``x = ±1`` from the exact solution.
    Losses: ``residual``, ``initial``, ``boundary`` (mean squared misfits). Evaluated on a
    256 × 100 grid. Inputs ``(x, t)``; output ``u``.

    Hard constraint ``"initial"``: ``u = u*(x, 0) + t · N`` with ``u*`` the exact solution
    (:class:`TimeDependentProblem`). Causal weighting via ``causal_eps``.
    """

    name = "diffusion_reaction"
    loss_names = ("residual", "initial", "boundary")
    hard_conditions = ("initial",)
    input_dim = 2
    output_dim = 1
    coordinate_names = ("x", "t")

    diffusion: float = 0.01
    rate: float = 5.0
    n_residual: int = 2000
    n_initial: int = 200
    n_boundary: int = 200

    def validate(self) -> None:
        check_positive("diffusion_reaction", diffusion=self.diffusion, rate=self.rate)

    def all_point_sets(self) -> dict[str, PointSet]:
        domain = Box((-1.0, 0.0), (1.0, 1.0))
        return {
            "residual": PointSet(domain, self.n_residual),
            "initial": PointSet(Box((-1.0, 0.0), (1.0, 0.0)), self.n_initial),
            "boundary": PointSet(BoxBoundary(domain, (0,)), self.n_boundary),
        }

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"].requires_grad_(True)
        u = module(xt, loss="residual")
        du = gradient(u, xt)  # (N, 2): u_x, u_t
        u_xx = hessian_diag(u, xt, dims=[0], grad=du)
        residual = du[:, 1:2] - self.diffusion * u_xx - self.rate * u * (1 - u)
        out = {"residual": self.residual_loss(module, residual, xt)}
        if "initial" in self.loss_names:
            x0 = batch["initial"]
            out["initial"] = mse(module(x0, loss="initial") - self.reference(x0))
        xb = batch["boundary"]
        out["boundary"] = mse(module(xb, loss="boundary") - self.reference(xb))
        return out

    def hard_form(self, xt: Tensor) -> tuple[Tensor, Tensor]:
        t = xt[:, 1:2]
        return self.reference(torch.cat([xt[:, :1], torch.zeros_like(t)], dim=1)), t

    def reference(self, points: Tensor) -> Tensor:
        kappa = math.sqrt(self.rate / (6 * self.diffusion))
        z = kappa * points[:, :1] - 5 * self.rate / 6 * points[:, 1:2]
        return torch.sigmoid(-z) ** 2  # (1 + e^z)^-2, overflow-safe

    def eval_points(self) -> Tensor:
        return grid((-1.0, 0.0), (1.0, 1.0), (256, 100))
