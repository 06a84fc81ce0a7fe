"""A 1-D Poisson problem for the optimiser-phase tests: ``-u'' = π² sin(πx)`` on ``[0, 1]``,
``u(0) = u(1) = 0``, exact solution ``u = sin(πx)``."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

from lightning_pinn import PINNModule


class Poisson1D(PINNModule):
    """The residual ``u'' + π² sin(πx)`` and the two boundary values as K = 2 losses."""

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["residual"].requires_grad_(True)
        u = self(x)
        (u_x,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        (u_xx,) = torch.autograd.grad(u_x.sum(), x, create_graph=True)
        r = u_xx + math.pi**2 * torch.sin(math.pi * x)
        return {"residual": r.pow(2).mean(), "boundary": self(batch["boundary"]).pow(2).mean()}


class _Points(IterableDataset):
    def __init__(self, n: int, dtype: torch.dtype) -> None:
        self.n, self.dtype = n, dtype

    def __iter__(self):
        gen = torch.Generator().manual_seed(0)  # batch i is the same in every run
        boundary = torch.tensor([[0.0], [1.0]], dtype=self.dtype)
        while True:
            x = torch.rand(self.n, 1, generator=gen, dtype=self.dtype)
            yield {"residual": x, "boundary": boundary.clone()}


class PoissonData(L.LightningDataModule):
    """Fresh uniform residual points every step (``n``), both boundary points."""

    def __init__(self, n: int = 64, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.n, self.dtype = n, dtype

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Points(self.n, self.dtype), batch_size=None)


def poisson(width: int = 16, dtype: torch.dtype = torch.float32, **kwargs) -> Poisson1D:
    """A tanh MLP ``1 -> width -> width -> 1`` in ``dtype`` inside :class:`Poisson1D`."""
    net = nn.Sequential(
        nn.Linear(1, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1)
    ).to(dtype)
    kwargs.setdefault("lr", 1e-2)
    return Poisson1D(net, loss_names=("residual", "boundary"), **kwargs)


def rel_l2(module: PINNModule) -> float:
    """Relative L2 error against ``sin(πx)`` on 201 grid points."""
    dtype = next(module.parameters()).dtype
    x = torch.linspace(0, 1, 201, dtype=dtype).reshape(-1, 1)
    with torch.no_grad():
        u = module(x)
    exact = torch.sin(math.pi * x)
    return float((u - exact).norm() / exact.norm())
