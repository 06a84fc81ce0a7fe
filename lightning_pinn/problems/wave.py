"""Second-order hyperbolic problems: the wave equation and the Klein–Gordon equation."""

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

__all__ = ["KleinGordon", "Wave"]

_UNIT = Box((0.0, 0.0), (1.0, 1.0))


def _second_derivatives(u: Tensor, xt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``u_t``, ``u_xx`` and ``u_tt`` of ``u(x, t)`` (three reverse passes)."""
    du = gradient(u, xt)  # (N, 2): u_x, u_t
    second = hessian_diag(u, xt, grad=du)  # (N, 2): u_xx, u_tt
    return du[:, 1:2], second[:, :1], second[:, 1:2]


def _initial_misfit(module: ProblemModule, x0: Tensor, target: Tensor) -> Tensor:
    """``mean (u - target)² + mean u_t²`` at ``t = 0``: displacement and zero velocity."""
    x0 = x0.requires_grad_(True)
    u0 = module(x0, loss="initial")
    u0_t = gradient(u0, x0)[:, 1:2]
    return mse(u0 - target) + mse(u0_t)


def _point_sets(problem: Wave | KleinGordon) -> dict[str, PointSet]:
    return {
        "residual": PointSet(_UNIT, problem.n_residual),
        "initial": PointSet(Box((0.0, 0.0), (1.0, 0.0)), problem.n_initial),
        "boundary": PointSet(BoxBoundary(_UNIT, (0,)), problem.n_boundary),
    }


@dataclasses.dataclass
class Wave(TimeDependentProblem):
    """1D wave equation (forward, K = 3).

    PDE: ``u_tt = c² u_xx`` with ``c = 2`` on ``(x, t) ∈ [0, 1]²``.
    Initial conditions ``u(x, 0) = sin(πx) + 0.5 sin(4πx)`` and ``u_t(x, 0) = 0``; Dirichlet
    boundary ``u(0, t) = u(1, t) = 0``.
    Losses: ``residual``; ``initial`` = mean squared displacement misfit + mean squared
    initial velocity (both on the same t = 0 points, equal weights); ``boundary``.
    Reference (exact): ``u = sin(πx) cos(cπt) + 0.5 sin(4πx) cos(4cπt)``, on a 128 × 128 grid.
    Inputs ``(x, t)``; output ``u``.

    Hard constraints (:class:`TimeDependentProblem`): ``"initial"`` gives
    ``u = u0(x) + t² · N``, which fixes both ``u(x, 0) = u0`` and ``u_t(x, 0) = 0``;
    ``"boundary"`` gives ``u = x (1 - x) · N``; both give ``u = u0(x) + t² x (1 - x) · N``
    (``u0`` vanishes at ``x = 0, 1``; K = 1). Causal weighting via ``causal_eps``.
    """

    name = "wave"
    loss_names = ("residual", "initial", "boundary")
    hard_conditions = ("initial", "boundary")
    input_dim = 2
    output_dim = 1
    coordinate_names = ("x", "t")

    c: float = 2.0
    n_residual: int = 2000
    n_initial: int = 200
    n_boundary: int = 200

    def validate(self) -> None:
        check_positive("wave", c=self.c)

    def all_point_sets(self) -> dict[str, PointSet]:
        return _point_sets(self)

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"].requires_grad_(True)
        _, u_xx, u_tt = _second_derivatives(module(xt, loss="residual"), xt)
        out = {"residual": self.residual_loss(module, u_tt - self.c**2 * u_xx, xt)}
        if "initial" in self.loss_names:
            x0 = batch["initial"]
            out["initial"] = _initial_misfit(module, x0, self.reference(x0))
        if "boundary" in self.loss_names:
            out["boundary"] = mse(module(batch["boundary"], loss="boundary"))
        return out

    def hard_form(self, xt: Tensor) -> tuple[Tensor, Tensor]:
        x, t = xt[:, :1], xt[:, 1:2]
        lift, distance = torch.zeros_like(x), torch.ones_like(x)
        if "initial" in self.hard_constraints:
            lift, distance = self.reference(torch.cat([x, torch.zeros_like(t)], dim=1)), t**2
        if "boundary" in self.hard_constraints:
            distance = distance * x * (1 - x)
        return lift, distance

    def reference(self, points: Tensor) -> Tensor:
        x, t = points[:, :1], points[:, 1:2]
        pi, c = math.pi, self.c
        return torch.sin(pi * x) * torch.cos(c * pi * t) + 0.5 * torch.sin(4 * pi * x) * torch.cos(
            4 * c * pi * t
        )

    def eval_points(self) -> Tensor:
        return grid((0.0, 0.0), (1.0, 1.0), (128, 128))


@dataclasses.dataclass
class KleinGordon(TimeDependentProblem):
    """Nonlinear Klein–Gordon equation (forward, K = 3).

    PDE: ``u_tt - u_xx + u³ = f`` on ``(x, t) ∈ [0, 1]²`` with the source
    ``f = -25π² x cos(5πt) + 6x³t - 6xt³ + u*³`` of the manufactured solution
    ``u* = x cos(5πt) + (xt)³``. Initial conditions ``u(x, 0) = x`` and ``u_t(x, 0) = 0``;
    Dirichlet boundary ``u(0, t) = 0``, ``u(1, t) = cos(5πt) + t³``.
    Losses: ``residual``; ``initial`` = mean squared ``u - x`` + mean squared ``u_t`` (both at
    the same t = 0 points, equal weights); ``boundary``.
    Reference (exact): ``u*``, on a 128 × 128 grid. Inputs ``(x, t)``; output ``u``.

    Hard constraint ``"initial"``: ``u = x + t² · N`` fixes ``u(x, 0) = x`` and
    ``u_t(x, 0) = 0`` (:class:`TimeDependentProblem`). Causal weighting via ``causal_eps``.
    """

    name = "klein_gordon"
    loss_names = ("residual", "initial", "boundary")
    hard_conditions = ("initial",)
    input_dim = 2
    output_dim = 1
    coordinate_names = ("x", "t")

    n_residual: int = 2000
    n_initial: int = 200
    n_boundary: int = 200

    def all_point_sets(self) -> dict[str, PointSet]:
        return _point_sets(self)

    def source(self, points: Tensor) -> Tensor:
        """The manufactured source ``f(x, t)``, ``[N, 1]``."""
        x, t = points[:, :1], points[:, 1:2]
        u = self.reference(points)
        return (
            -25 * math.pi**2 * x * torch.cos(5 * math.pi * t) + 6 * x**3 * t - 6 * x * t**3 + u**3
        )

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"].requires_grad_(True)
        u = module(xt, loss="residual")
        _, u_xx, u_tt = _second_derivatives(u, xt)
        residual = u_tt - u_xx + u**3 - self.source(xt.detach())
        out = {"residual": self.residual_loss(module, residual, xt)}
        boundary = module(batch["boundary"], loss="boundary") - self.reference(batch["boundary"])
        if "initial" in self.loss_names:
            x0 = batch["initial"]
            out["initial"] = _initial_misfit(module, x0, x0[:, :1])
        out["boundary"] = mse(boundary)
        return out

    def hard_form(self, xt: Tensor) -> tuple[Tensor, Tensor]:
        return xt[:, :1], xt[:, 1:2] ** 2  # "initial" is the only hard condition

    def reference(self, points: Tensor) -> Tensor:
        x, t = points[:, :1], points[:, 1:2]
        return x * torch.cos(5 * math.pi * t) + (x * t) ** 3

    def eval_points(self) -> Tensor:
        return grid((0.0, 0.0), (1.0, 1.0), (128, 128))
