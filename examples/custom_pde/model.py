"""A user's own PDE, trunk and module, written against lightning_pinn's public API only.

PDE (not in the suite): steady 2D advection-diffusion on the unit square,

    -eps * (u_xx + u_yy) + b1 * u_x + b2 * u_y = f(x, y),   (x, y) in (0, 1)^2,
    u = 0 on the boundary,

with eps = 0.1, b = (1, 0.5) and the source f manufactured so that the exact solution is

    u*(x, y) = sin(pi x) sin(pi y),
    f = 2 eps pi^2 u* + b1 pi cos(pi x) sin(pi y) + b2 pi sin(pi x) cos(pi y).

Losses: ``residual`` (mean squared PDE residual) and ``boundary`` (mean squared u on the four
edges), so K = 2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lightning_pinn import PINNModule
from lightning_pinn.data import Box, BoxBoundary, CollocationDataModule
from lightning_pinn.operators import gradient

EPS = 0.1
B = (1.0, 0.5)


def exact_solution(xy: Tensor) -> Tensor:
    """``u*(x, y) = sin(pi x) sin(pi y)`` for ``[N, 2]`` points; returns ``[N, 1]``."""
    return torch.sin(math.pi * xy[:, :1]) * torch.sin(math.pi * xy[:, 1:2])


def source(xy: Tensor) -> Tensor:
    """The manufactured right-hand side ``f`` ``[N, 1]``."""
    x, y = xy[:, :1], xy[:, 1:2]
    sx, sy = torch.sin(math.pi * x), torch.sin(math.pi * y)
    cx, cy = torch.cos(math.pi * x), torch.cos(math.pi * y)
    return 2 * EPS * math.pi**2 * sx * sy + B[0] * math.pi * cx * sy + B[1] * math.pi * sx * cy


class ResidualBlock(nn.Module):
    """``x + W2 tanh(W1 x)`` with two nested ``nn.Linear`` layers (adapters reach them)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.inner(x)


class FourierResNet(nn.Module):
    """Random Fourier features ``[cos(2π x B), sin(2π x B)]`` then residual tanh blocks.

    Args:
        in_dim: input dimension.
        out_dim: output dimension.
        features: number of Fourier frequencies (the embedding has ``2 * features`` entries).
        scale: standard deviation of the frequencies.
        width: hidden width.
        blocks: number of residual blocks.
        seed: seed of the (fixed, non-trainable) frequency matrix.
    """

    def __init__(
        self,
        in_dim: int = 2,
        out_dim: int = 1,
        features: int = 32,
        scale: float = 1.0,
        width: int = 64,
        blocks: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("frequencies", scale * torch.randn(in_dim, features, generator=gen))
        self.lift = nn.Linear(2 * features, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        z = 2 * math.pi * x @ self.frequencies  # (N, features)
        h = torch.tanh(self.lift(torch.cat([torch.cos(z), torch.sin(z)], dim=1)))
        return self.head(torch.tanh(self.blocks(h)))


class AdvectionDiffusion(PINNModule):
    """The PINN of the advection-diffusion problem above (K = 2)."""

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        xy = batch["residual"].requires_grad_(True)
        u = self(xy)
        du = gradient(u, xy)  # (N, 2): u_x, u_y
        u_xx = gradient(du[:, :1], xy)[:, :1]
        u_yy = gradient(du[:, 1:2], xy)[:, 1:2]
        residual = -EPS * (u_xx + u_yy) + B[0] * du[:, :1] + B[1] * du[:, 1:2] - source(xy)
        boundary = self(batch["boundary"])
        return {"residual": residual.pow(2).mean(), "boundary": boundary.pow(2).mean()}


def datamodule(
    n_residual: int = 1000, n_boundary: int = 200, seed: int = 0
) -> CollocationDataModule:
    """Collocation points resampled every step and a 64 x 64 evaluation grid with u*."""
    square = Box((0.0, 0.0), (1.0, 1.0))
    g = torch.linspace(0.0, 1.0, 64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    return CollocationDataModule(
        {"residual": (square, n_residual), "boundary": (BoxBoundary(square, (0, 1)), n_boundary)},
        seed=seed,
        eval_points=torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1),
        reference=exact_solution,
    )
