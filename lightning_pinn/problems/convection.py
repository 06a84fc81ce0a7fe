"""Linear convection with periodic boundary, parameter-varying speed β."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from lightning_pinn.data import Box, PointSet
from lightning_pinn.operators import gradient
from lightning_pinn.problems._base import ProblemModule
from lightning_pinn.problems._common import grid, mse
from lightning_pinn.problems._time_dependent import TimeDependentProblem

__all__ = ["Convection"]

_TWO_PI = 2 * math.pi


@dataclasses.dataclass
class Convection(TimeDependentProblem):
    """1D convection (forward, K = 3), the failure mode of Krishnapriyan et al. (2021).

    PDE: ``u_t + β u_x = 0`` on ``x ∈ [0, 2π]``, ``t ∈ [0, 1]``, ``β = 30`` by default
    (registered variants ``convection-b1``, ``-b10``, ``-b20``, ``-b40``; any ``β > 0`` via
    ``get("convection", beta=...)``). Initial condition ``u(x, 0) = sin x``; periodic
    boundary, enforced as ``u(0, t) = u(2π, t)`` at the same sampled t.
    Losses: ``residual``, ``initial``, ``boundary`` (mean squared ``u(0,t) - u(2π,t)``).
    Reference (exact): ``u = sin(x - βt)``, on a 256 × 100 grid. Inputs ``(x, t)``; output u.

    Hard constraint ``"initial"``: ``u = sin x + t · N`` (:class:`TimeDependentProblem`; the
    periodic boundary belongs to the trunk, e.g. a periodic embedding). Causal weighting via
    ``causal_eps``.
    """

    name = "convection"
    loss_names = ("residual", "initial", "boundary")
    hard_conditions = ("initial",)
    input_dim = 2
    output_dim = 1
    coordinate_names = ("x", "t")

    beta: float = 30.0
    n_residual: int = 2000
    n_initial: int = 256
    n_boundary: int = 128

    def validate(self) -> None:
        if not 0 < self.beta <= 1000:
            raise ValueError(f"convection: beta must be in (0, 1000], got {self.beta!r}")

    def all_point_sets(self) -> dict[str, PointSet]:
        return {
            "residual": PointSet(Box((0.0, 0.0), (_TWO_PI, 1.0)), self.n_residual),
            "initial": PointSet(Box((0.0, 0.0), (_TWO_PI, 0.0)), self.n_initial),
            "boundary": PointSet(Box((0.0, 0.0), (0.0, 1.0)), self.n_boundary),  # x = 0
        }

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"].requires_grad_(True)
        du = gradient(module(xt, loss="residual"), xt)  # (N, 2): u_x, u_t
        residual = du[:, 1:2] + self.beta * du[:, :1]
        out = {"residual": self.residual_loss(module, residual, xt)}
        if "initial" in self.loss_names:
            x0 = batch["initial"]
            out["initial"] = mse(module(x0, loss="initial") - torch.sin(x0[:, :1]))
        left = batch["boundary"]
        right = left + torch.tensor([_TWO_PI, 0.0], dtype=left.dtype, device=left.device)
        out["boundary"] = mse(module(left, loss="boundary") - module(right, loss="boundary"))
        return out

    def hard_form(self, xt: Tensor) -> tuple[Tensor, Tensor]:
        return torch.sin(xt[:, :1]), xt[:, 1:2]  # "initial" is the only hard condition

    def reference(self, points: Tensor) -> Tensor:
        return torch.sin(points[:, :1] - self.beta * points[:, 1:2])

    def eval_points(self) -> Tensor:
        return grid((0.0, 0.0), (_TWO_PI, 1.0), (256, 100))
