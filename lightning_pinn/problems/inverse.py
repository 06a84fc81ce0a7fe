"""Inverse problems: unknown PDE coefficients identified from noisy observations.

Observations are fixed tensors (``Problem.fixed_data()``, read in the losses as
``module.fixed[name]``) drawn once from the reference at ``n_data`` uniform interior points;
the points and the noise both come from ``data_seed``. Noise is additive Gaussian with
standard deviation ``noise * std(u)`` over the clean observations (Raissi et al. 2019).
Scalar unknowns are ``nn.Parameter`` s in ``module.coefficients`` (logged as ``param/<name>``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from lightning_pinn.data import Box, BoxBoundary, PointSet
from lightning_pinn.operators import divergence, gradient, hessian_diag
from lightning_pinn.problems._base import Problem, ProblemModule
from lightning_pinn.problems._common import add_noise, check_positive, grid, mse, random_points
from lightning_pinn.problems.burgers import Burgers, burgers_solution

__all__ = ["BurgersInverse", "HeatInverse", "PoissonInverse"]

_NOISE_SEED_OFFSET = 1_000_003  # the noise generator's seed is data_seed + this offset


def _observations(problem: Problem, box: Box) -> dict[str, Tensor]:
    x = random_points(box, problem.n_data, problem.data_seed)
    with torch.no_grad():
        clean = problem.reference(x.double())[:, :1]
    noisy = add_noise(clean, problem.noise, problem.data_seed + _NOISE_SEED_OFFSET)
    return {"x_data": x, "u_data": noisy.float()}


def _check_data_options(problem: Problem) -> None:
    if not 0 <= problem.noise <= 1:
        raise ValueError(f"{problem.name}: noise must be in [0, 1], got {problem.noise!r}")
    if problem.data_seed < 0:
        raise ValueError(f"{problem.name}: data_seed must be >= 0, got {problem.data_seed!r}")


def _data_loss(module: ProblemModule) -> Tensor:
    u = module(module.fixed["x_data"], loss="data")
    return mse(u[:, :1] - module.fixed["u_data"])


@dataclasses.dataclass
class BurgersInverse(Problem):
    """Inverse Burgers' equation: identify the viscosity ν (K = 3).

    PDE: ``u_t + u u_x = ν u_xx`` on ``x ∈ [-1, 1]``, ``t ∈ [0, 1]``, true ``ν = 0.01/π``,
    unknown ``nu`` initialised at ``nu_init = 0.05``. Initial condition
    ``u(x, 0) = -sin(πx)``. Losses: ``residual`` (with the trainable ν), ``initial``,
    ``data`` (mean squared misfit to ``n_data = 1000`` observations with 1 % noise,
    ``data_seed = 0``). Reference: the Cole–Hopf solution of :class:`Burgers`, on its
    256 × 100 grid. Inputs ``(x, t)``; output ``u``.
    """

    name = "burgers_inverse"
    loss_names = ("residual", "initial", "data")
    input_dim = 2
    output_dim = 1
    coordinate_names = ("x", "t")

    nu: float = 0.01 / math.pi
    nu_init: float = 0.05
    noise: float = 0.01
    data_seed: int = 0
    n_residual: int = 2000
    n_initial: int = 200
    n_data: int = 1000

    def validate(self) -> None:
        check_positive(self.name, nu=self.nu, nu_init=self.nu_init)
        _check_data_options(self)

    def point_sets(self) -> dict[str, PointSet]:
        return {
            "residual": PointSet(Box((-1.0, 0.0), (1.0, 1.0)), self.n_residual),
            "initial": PointSet(Box((-1.0, 0.0), (1.0, 0.0)), self.n_initial),
        }

    def unknowns(self) -> dict[str, float]:
        return {"nu": self.nu_init}

    def true_values(self) -> dict[str, float]:
        return {"nu": self.nu}

    def fixed_data(self) -> dict[str, Tensor]:
        return _observations(self, Box((-1.0, 0.0), (1.0, 1.0)))

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"].requires_grad_(True)
        u = module(xt, loss="residual")
        du = gradient(u, xt)  # (N, 2): u_x, u_t
        u_xx = hessian_diag(u, xt, dims=[0], grad=du)
        residual = du[:, 1:2] + u * du[:, :1] - module.coefficients["nu"] * u_xx
        x0 = batch["initial"]
        initial = module(x0, loss="initial") + torch.sin(math.pi * x0[:, :1])
        return {
            "residual": self.residual_loss(module, residual, xt),
            "initial": mse(initial),
            "data": _data_loss(module),
        }

    def reference(self, points: Tensor) -> Tensor:
        return burgers_solution(points, self.nu)

    def eval_points(self) -> Tensor:
        return Burgers(nu=self.nu).eval_points()


@dataclasses.dataclass
class HeatInverse(Problem):
    """Inverse heat equation: identify the diffusivity κ (K = 3).

    PDE: ``u_t = κ u_xx`` on ``(x, t) ∈ [0, 1]²``, true ``κ = 0.1``, unknown ``kappa``
    initialised at ``kappa_init = 0.5``. Dirichlet boundary ``u(0, t) = u(1, t) = 0``.
    Losses: ``residual`` (with the trainable κ), ``boundary``, ``data`` (``n_data = 500``
    observations, 1 % noise, ``data_seed = 0``).
    Reference (exact): ``u = e^{-κπ²t} sin(πx) + 0.5 e^{-4κπ²t} sin(2πx)``, on a 128 × 128
    grid. Inputs ``(x, t)``; output ``u``.
    """

    name = "heat_inverse"
    loss_names = ("residual", "boundary", "data")
    input_dim = 2
    output_dim = 1
    coordinate_names = ("x", "t")

    kappa: float = 0.1
    kappa_init: float = 0.5
    noise: float = 0.01
    data_seed: int = 0
    n_residual: int = 2000
    n_boundary: int = 200
    n_data: int = 500

    def validate(self) -> None:
        check_positive(self.name, kappa=self.kappa, kappa_init=self.kappa_init)
        _check_data_options(self)

    def point_sets(self) -> dict[str, PointSet]:
        domain = Box((0.0, 0.0), (1.0, 1.0))
        return {
            "residual": PointSet(domain, self.n_residual),
            "boundary": PointSet(BoxBoundary(domain, (0,)), self.n_boundary),
        }

    def unknowns(self) -> dict[str, float]:
        return {"kappa": self.kappa_init}

    def true_values(self) -> dict[str, float]:
        return {"kappa": self.kappa}

    def fixed_data(self) -> dict[str, Tensor]:
        return _observations(self, Box((0.0, 0.0), (1.0, 1.0)))

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xt = batch["residual"].requires_grad_(True)
        u = module(xt, loss="residual")
        du = gradient(u, xt)  # (N, 2): u_x, u_t
        u_xx = hessian_diag(u, xt, dims=[0], grad=du)
        residual = du[:, 1:2] - module.coefficients["kappa"] * u_xx
        return {
            "residual": self.residual_loss(module, residual, xt),
            "boundary": mse(module(batch["boundary"], loss="boundary")),
            "data": _data_loss(module),
        }

    def reference(self, points: Tensor) -> Tensor:
        x, t = points[:, :1], points[:, 1:2]
        rate = self.kappa * math.pi**2
        return torch.exp(-rate * t) * torch.sin(math.pi * x) + 0.5 * torch.exp(
            -4 * rate * t
        ) * torch.sin(2 * math.pi * x)

    def eval_points(self) -> Tensor:
        return grid((0.0, 0.0), (1.0, 1.0), (128, 128))


@dataclasses.dataclass
class PoissonInverse(Problem):
    """Inverse Poisson problem with an unknown coefficient field (PINNacle's PInv, K = 3).

    PDE: ``-∇·(a ∇u) = f`` on ``[0, 1]²`` with ``u = sin(πx) sin(πy)``,
    ``a = 1 / (1 + x² + y² + (x-1)² + (y-1)²)`` and ``f = 2π² a u - a_x u_x - a_y u_y``.
    The network has two outputs ``(u, a)``: the field ``a`` is unknown in the interior.
    Losses: ``residual``; ``boundary`` = mean squared misfit of both ``u`` (= 0) and ``a``
    (exact values) on ``∂Ω`` (the boundary values of ``a`` make it identifiable);
    ``data`` = mean squared misfit of ``u`` to ``n_data = 1000`` observations with 1 % noise
    (``data_seed = 0``). Reference (exact): both columns ``(u, a)``, on a 128 × 128 grid.
    Inputs ``(x, y)``; outputs ``u``, ``a``.
    """

    name = "poisson_inverse"
    loss_names = ("residual", "boundary", "data")
    input_dim = 2
    output_dim = 2
    field_names = ("u", "a")
    coordinate_names = ("x", "y")

    noise: float = 0.01
    data_seed: int = 0
    n_residual: int = 2000
    n_boundary: int = 400
    n_data: int = 1000

    def validate(self) -> None:
        _check_data_options(self)

    def point_sets(self) -> dict[str, PointSet]:
        domain = Box((0.0, 0.0), (1.0, 1.0))
        return {
            "residual": PointSet(domain, self.n_residual),
            "boundary": PointSet(BoxBoundary(domain, (0, 1)), self.n_boundary),
        }

    def fixed_data(self) -> dict[str, Tensor]:
        return _observations(self, Box((0.0, 0.0), (1.0, 1.0)))

    def source(self, points: Tensor) -> Tensor:
        """The source ``f(x, y)``, ``[N, 1]``."""
        x, y = points[:, :1], points[:, 1:2]
        pi = math.pi
        denom = 1 + x**2 + y**2 + (x - 1) ** 2 + (y - 1) ** 2
        a, a_x, a_y = 1 / denom, -(4 * x - 2) / denom**2, -(4 * y - 2) / denom**2
        u = torch.sin(pi * x) * torch.sin(pi * y)
        u_x = pi * torch.cos(pi * x) * torch.sin(pi * y)
        u_y = pi * torch.sin(pi * x) * torch.cos(pi * y)
        return 2 * pi**2 * a * u - a_x * u_x - a_y * u_y

    def losses(self, module: ProblemModule, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        xy = batch["residual"].requires_grad_(True)
        out = module(xy, loss="residual")
        flux = out[:, 1:2] * gradient(out[:, :1], xy)  # (N, 2): a ∇u
        div = divergence(flux, xy)  # (N, 1): ∇·(a ∇u)
        xb = batch["boundary"]
        boundary = mse(module(xb, loss="boundary") - self.reference(xb))
        return {
            "residual": self.residual_loss(module, -div - self.source(xy.detach()), xy),
            "boundary": boundary,
            "data": _data_loss(module),
        }

    def reference(self, points: Tensor) -> Tensor:
        x, y = points[:, :1], points[:, 1:2]
        u = torch.sin(math.pi * x) * torch.sin(math.pi * y)
        a = 1 / (1 + x**2 + y**2 + (x - 1) ** 2 + (y - 1) ** 2)
        return torch.cat([u, a], dim=1)

    def eval_points(self) -> Tensor:
        return grid((0.0, 0.0), (1.0, 1.0), (128, 128))
