"""The modified MLP: two input encoders gate every hidden layer."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from lightning_pinn.networks._common import (
    activation_factory,
    check_sizes,
    embedded_dim,
    xavier_init,
)
from lightning_pinn.networks._embeddings import Embedding
from lightning_pinn.networks._rwf import RWF

__all__ = ["ModifiedMLP"]


class ModifiedMLP(nn.Module):
    """Modified MLP of Wang, Teng & Perdikaris (2021).

    With ``X`` the (embedded) input, two encoders ``U = σ(X W_u + b_u)`` and
    ``V = σ(X W_v + b_v)`` gate every hidden layer::

        H = X
        for each of the depth hidden layers:
            Z = σ(H W + b)
            H = (1 - Z) ⊙ U + Z ⊙ V
        out = H W_out + b_out

    All layers are ``nn.Linear`` (Xavier-normal weights, zero biases), so ``PerLossAdapter``
    adapts them and ``apply_rwf`` factorises them.

    Reference:
        Wang, Teng & Perdikaris (2021), "Understanding and mitigating gradient flow
        pathologies in physics-informed neural networks", SIAM J. Sci. Comput. 43(5).

    Args:
        in_dim: input dimension d.
        out_dim: output dimension m.
        width: hidden width (also the encoders' width).
        depth: number of gated hidden layers.
        activation: activation module factory (``nn.Tanh`` by default), or its name
            (``"tanh"``, ``"sigmoid"``, ``"silu"``, ``"gelu"``, ``"softplus"``).
        embedding: optional input embedding whose ``in_dim`` equals ``in_dim``; it feeds the
            encoders and the first hidden layer.
        rwf: optional random weight factorisation options (``RWF(mean=1.0, std=0.1)``).

    Raises:
        ValueError: a size below 1, or an embedding built for another ``in_dim``.

    Example:
        >>> net = ModifiedMLP(2, 1, width=64, depth=4)
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        width: int = 64,
        depth: int = 4,
        activation: Callable[[], nn.Module] | str = nn.Tanh,
        embedding: Embedding | None = None,
        rwf: RWF | None = None,
    ) -> None:
        super().__init__()
        check_sizes("ModifiedMLP", in_dim=in_dim, out_dim=out_dim, width=width, depth=depth)
        activation = activation_factory("ModifiedMLP", activation)
        first = embedded_dim("ModifiedMLP", in_dim, embedding)
        self.embedding = embedding
        self.encoder_u = nn.Linear(first, width)
        self.encoder_v = nn.Linear(first, width)
        dims = [first] + [width] * depth
        self.hidden = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.head = nn.Linear(width, out_dim)
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
        h = x
        for layer in self.hidden:
            z = self.activation(layer(h))  # (N, width)
            h = (1 - z) * u + z * v
        return self.head(h)
