"""PirateNet: gated residual blocks whose skip gate starts at zero."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lightning_pinn.networks._common import (
    activation_factory,
    check_sizes,
    embedded_dim,
    xavier_init,
)
from lightning_pinn.networks._embeddings import Embedding
from lightning_pinn.networks._rwf import RWF

__all__ = ["PirateBlock", "PirateNet"]


class PirateBlock(nn.Module):
    """One PirateNet residual block ``[N, dim] -> [N, dim]``, gated by the encoders ``U, V``.

    ``f = σ(x W_1 + b_1)``, ``z_1 = f ⊙ U + (1 - f) ⊙ V``; ``g = σ(z_1 W_2 + b_2)``,
    ``z_2 = g ⊙ U + (1 - g) ⊙ V``; ``h = σ(z_2 W_3 + b_3)``; output
    ``α h + (1 - α) x`` with a trainable scalar ``α`` initialised to 0, so at
    initialisation the block is the identity.

    Reference:
        Wang, Sankaran, Wang & Perdikaris (2024), "PirateNets: Physics-informed deep learning
        with residual adaptive networks", JMLR 25.

    Args:
        dim: input and output width (the embedding's ``out_dim``).
        width: hidden width of the block and of ``U``, ``V``.
        activation: activation module factory.
    """

    def __init__(self, dim: int, width: int, activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, dim)
        self.activation = activation()
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        """``x`` ``[N, dim]``, ``u``, ``v`` ``[N, width]`` -> ``[N, dim]``."""
        f = self.activation(self.fc1(x))
        z = f * u + (1 - f) * v
        g = self.activation(self.fc2(z))
        z = g * u + (1 - g) * v
        h = self.activation(self.fc3(z))
        return self.alpha * h + (1 - self.alpha) * x


class PirateNet(nn.Module):
    """Physics-informed residual adaptive network (PirateNet), without its physics init.

    ``Φ = embedding(x)``, ``U = σ(Φ W_u + b_u)``, ``V = σ(Φ W_v + b_v)``, then ``depth``
    :class:`PirateBlock` s on ``Φ`` and a linear head. Every block's gate ``α`` starts at 0,
    so at initialisation the network is a linear function of the embedding (the paper's
    point: depth is switched on gradually during training). The paper's least-squares
    initialisation of the head is not implemented; the head is Xavier-initialised.

    Reference:
        Wang, Sankaran, Wang & Perdikaris (2024), "PirateNets: Physics-informed deep learning
        with residual adaptive networks", JMLR 25.

    Args:
        in_dim: input dimension d.
        out_dim: output dimension m.
        width: hidden width of the blocks and encoders.
        depth: number of residual blocks (three dense layers each).
        activation: activation module factory (``nn.Tanh`` by default), or its name
            (``"tanh"``, ``"sigmoid"``, ``"silu"``, ``"gelu"``, ``"softplus"``).
        embedding: input embedding (the paper uses random Fourier features); without one the
            blocks act on the raw coordinates.
        rwf: optional random weight factorisation options (``RWF(mean=1.0, std=0.1)``).

    Raises:
        ValueError: a size below 1, or an embedding built for another ``in_dim``.

    Example:
        >>> net = PirateNet(2, 1, width=64, depth=2, embedding=FourierFeatures(2, 64))
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        width: int = 256,
        depth: int = 3,
        activation: Callable[[], nn.Module] | str = nn.Tanh,
        embedding: Embedding | None = None,
        rwf: RWF | None = None,
    ) -> None:
        super().__init__()
        check_sizes("PirateNet", in_dim=in_dim, out_dim=out_dim, width=width, depth=depth)
        activation = activation_factory("PirateNet", activation)
        dim = embedded_dim("PirateNet", in_dim, embedding)
        self.embedding = embedding
        self.encoder_u = nn.Linear(dim, width)
        self.encoder_v = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(PirateBlock(dim, width, activation) for _ in range(depth))
        self.head = nn.Linear(dim, out_dim)
        self.activation = activation()
        xavier_init(self)
        if rwf is not None:
            rwf.apply(self)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim]`` -> ``[N, out_dim]``."""
        if self.embedding is not None:
            x = self.embedding(x)
        u = self.activation(self.encoder_u(x))  # (N, width)
        v = self.activation(self.encoder_v(x))  # (N, width)
        for block in self.blocks:
            x = block(x, u, v)
        return self.head(x)
