"""2D Helmholtz equation with a manufactured product-of-sines solution."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from lightning_pinn.data import Box, BoxBoundary, PointSet
from lightning_pinn.operators import hessian_diag
from lightning_pinn.problems._base import Problem, ProblemModule
from lightning_pinn.problems._common import grid, mse

__all__ = ["Helmholtz"]

_DOMAIN = Box((-1.0, -1.0), (1.0, 1.0))


@dataclasses.dataclass
class Helmholtz(Problem):
    """2D Helmholtz equation (forward, K = 2), Wang, Teng & Perdikaris (2021).

    PDE: ``Δu + k² u = q`` on ``[-1, 1]²`` with ``k = 1`` and
    ``q = (k² - (a1² + a2²) π²) sin(a1πx) sin(a2πy)``; Dirichlet boundary ``u = 0``.
    ``a1 = 1``, ``a2 = 4`` by default (integers, so the boundary value is exactly 0);
    registered variants ``helmholtz-a1``, ``-a2``, ``-a6`` set ``a2``.
    Losses: ``residual``, ``boundary`` (mean squared misfits).
    Reference (exact): ``u = sin(a1πx) sin(a2πy)``, on a 128 × 128 grid.
    Inputs ``(x, y)``; output ``u``.
    """

    name = "helmholtz"
    loss_names = ("residual", "boundary")
    input_dim = 2
    output_dim = 1
    coordinate_names = ("x", "y")

    a1: int = 1
    a2: int = 4
    k: float = 1.0
    n_residual: int = 2000
    n_boundary: int = 400

    def validate(self) -> None:
        for key in ("a1", "a2"):
            value = getattr(self, key)
            if not 1 <= value <= 20:
                raise ValueError(f"helmholtz: {key} must be an integer in [1, 20], got {value!r}")
        if not self.k >= 0:
            raise ValueError(f"helmholtz: k must be >= 0, got {self.k!r}")

    def point_sets(self) -> dict[str, PointSet]:
        return {
            "residual": PointSet(_DOMAIN, self.n_residual),
            "boundary": PointSet(BoxBoundary(_DOMAIN, (0, 1)), self.n_boundary),
        }

    def source(self, points: Tensor) -> Tensor:
        """The source ``q(x, y)``, ``[N, 1]``."""
        factor = self.k**2 - (self.a1**2 + self.a2**2) * math.pi**2
        return factor * self.reference(points)

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xy = batch["residual"].requires_grad_(True)
        u = module(xy, loss="residual")
        u_xx, u_yy = hessian_diag(u, xy).unbind(dim=1)  # (N,) each: three reverse passes
        residual = (u_xx + u_yy).unsqueeze(1) + self.k**2 * u - self.source(xy.detach())
        return {
            "residual": self.residual_loss(module, residual, xy),
            "boundary": mse(module(batch["boundary"], loss="boundary")),
        }

    def reference(self, points: Tensor) -> Tensor:
        x, y = points[:, :1], points[:, 1:2]
        return torch.sin(self.a1 * math.pi * x) * torch.sin(self.a2 * math.pi * y)

    def eval_points(self) -> Tensor:
        return grid((-1.0, -1.0), (1.0, 1.0), (128, 128))
