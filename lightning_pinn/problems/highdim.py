"""High-dimensional problems whose Laplacian is computed in forward mode.

The residuals use :func:`lightning_pinn.operators.laplacian_fwd` on the module's network:
the forward Laplacian for the default tanh MLP, ``vmap``-batched forward-over-reverse
Hessian-vector products for any other network (e.g. one wrapped with adapters) — never d
sequential reverse passes; ``benchmarks/highdim.py`` measures the step time against d.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from lightning_pinn.data import Box, BoxBoundary, PointSet
from lightning_pinn.operators import gradient, laplacian_fwd
from lightning_pinn.problems._base import Problem, ProblemModule
from lightning_pinn.problems._common import mse, random_points

__all__ = ["HeatND", "PoissonND"]

_MAX_DIM = 100
_EVAL_SEED = 1234


def _check_dim(problem: Problem) -> None:
    if not 1 <= problem.dim <= _MAX_DIM:
        raise ValueError(f"{problem.name}: dim must be in [1, {_MAX_DIM}], got {problem.dim!r}")


@dataclasses.dataclass
class PoissonND(Problem):
    """Poisson equation in d dimensions (forward, K = 2).

    PDE: ``-Δu = f`` on ``[0, 1]^d`` with ``f = (π²/4) Σ_i sin(πx_i/2)``; Dirichlet boundary
    ``u = u*`` on all ``2d`` faces. Reference (exact): ``u* = Σ_i sin(πx_i/2)``.
    ``dim = 5`` by default; registered variants ``poisson_nd-d2``, ``-d5``, ``-d10``,
    ``-d20``, ``-d50``. Losses: ``residual`` (Laplacian in forward mode), ``boundary``.
    Evaluated on 4096 uniform random points (fixed seed). Inputs ``(x1, ..., xd)``; output u.
    """

    name = "poisson_nd"
    loss_names = ("residual", "boundary")
    output_dim = 1

    dim: int = 5
    n_residual: int = 1000
    n_boundary: int = 500

    def __post_init__(self) -> None:
        self.input_dim = self.dim
        self.coordinate_names = tuple(f"x{i + 1}" for i in range(self.dim))
        super().__post_init__()

    def validate(self) -> None:
        _check_dim(self)

    def _domain(self) -> Box:
        return Box((0.0,) * self.dim, (1.0,) * self.dim)

    def point_sets(self) -> dict[str, PointSet]:
        return {
            "residual": PointSet(self._domain(), self.n_residual),
            "boundary": PointSet(
                BoxBoundary(self._domain(), tuple(range(self.dim))), self.n_boundary
            ),
        }

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x = batch["residual"]
        source = (math.pi**2 / 4) * self.reference(x)
        with module.loss_scope("residual"):  # module.model(x) == module(x) here
            residual = -laplacian_fwd(module.model, x) - source
        xb = batch["boundary"]
        boundary = mse(module(xb, loss="boundary") - self.reference(xb))
        return {"residual": self.residual_loss(module, residual, x), "boundary": boundary}

    def reference(self, points: Tensor) -> Tensor:
        return torch.sin(math.pi * points / 2).sum(dim=1, keepdim=True)

    def eval_points(self) -> Tensor:
        return random_points(self._domain(), 4096, _EVAL_SEED)


@dataclasses.dataclass
class HeatND(Problem):
    """Heat equation with a source in d space dimensions (forward, K = 3).

    PDE: ``u_t = Δu + f`` on ``x ∈ [-1, 1]^d``, ``t ∈ [0, 1]``, ``d = 5``. Reference (exact):
    ``u* = exp(|x|²/2 + t)``. Since ``u*_t = u*`` and ``∂²u*/∂x_i² = (1 + x_i²) u*``,
    ``Δu* = (d + |x|²) u*`` and the source is ``f = u*_t - Δu* = (1 - d - |x|²) u*``.
    Initial condition ``u(x, 0) = exp(|x|²/2)``; Dirichlet boundary ``u = u*`` on the
    ``2d`` faces ``x_i = ±1``. Losses: ``residual`` (spatial Laplacian in forward mode),
    ``initial``, ``boundary``. Evaluated on 4096 uniform random points (fixed seed).
    Inputs ``(x1, ..., xd, t)``; output ``u``.
    """

    name = "heat_nd"
    loss_names = ("residual", "initial", "boundary")
    output_dim = 1

    dim: int = 5
    n_residual: int = 1000
    n_initial: int = 250
    n_boundary: int = 500

    def __post_init__(self) -> None:
        self.input_dim = self.dim + 1
        self.coordinate_names = tuple(f"x{i + 1}" for i in range(self.dim)) + ("t",)
        super().__post_init__()

    def validate(self) -> None:
        _check_dim(self)

    def _domain(self, t_end: float = 1.0) -> Box:
        return Box((-1.0,) * self.dim + (0.0,), (1.0,) * self.dim + (t_end,))

    def point_sets(self) -> dict[str, PointSet]:
        space = tuple(range(self.dim))
        return {
            "residual": PointSet(self._domain(), self.n_residual),
            "initial": PointSet(self._domain(t_end=0.0), self.n_initial),
            "boundary": PointSet(BoxBoundary(self._domain(), space), self.n_boundary),
        }

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"]
        xt_g = xt.detach().requires_grad_(True)
        with module.loss_scope("residual"):  # the network module(x) runs
            lap = laplacian_fwd(module.model, xt, dims=range(self.dim))
            u_t = gradient(module(xt_g), xt_g)[:, -1:]
        r2 = xt[:, :-1].pow(2).sum(dim=1, keepdim=True)
        source = (1 - self.dim - r2) * self.reference(xt)
        x0, xb = batch["initial"], batch["boundary"]
        return {
            "residual": self.residual_loss(module, u_t - lap - source, xt),
            "initial": mse(module(x0, loss="initial") - self.reference(x0)),
            "boundary": mse(module(xb, loss="boundary") - self.reference(xb)),
        }

    def reference(self, points: Tensor) -> Tensor:
        r2 = points[:, :-1].pow(2).sum(dim=1, keepdim=True)
        return torch.exp(r2 / 2 + points[:, -1:])

    def eval_points(self) -> Tensor:
        return random_points(self._domain(), 4096, _EVAL_SEED)
