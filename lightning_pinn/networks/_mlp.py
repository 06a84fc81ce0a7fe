"""The default trunk: a tanh multilayer perceptron with Xavier initialisation."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from lightning_pinn.networks._common import activation_factory, check_sizes, embedded_dim
from lightning_pinn.networks._embeddings import Embedding
from lightning_pinn.networks._rwf import RWF

__all__ = ["MLP"]


class MLP(nn.Module):
    """Fully connected network ``in_dim -> [width] * depth -> out_dim``.

    With an ``embedding`` the network is ``embedding -> [width] * depth -> out_dim`` and the
    embedding is ``net[0]`` (it holds buffers only). With ``rwf`` every ``nn.Linear`` is
    factorised after initialisation (:func:`~lightning_pinn.networks.apply_rwf`).

    Args:
        in_dim: input dimension d.
        out_dim: output dimension m.
        width: hidden width.
        depth: number of hidden layers.
        activation: activation module factory (``nn.Tanh`` by default), or its name
            (``"tanh"``, ``"sigmoid"``, ``"silu"``, ``"gelu"``, ``"softplus"``).
        embedding: optional input embedding (``FourierFeatures``, ``PeriodicEmbedding``) whose
            ``in_dim`` equals ``in_dim``.
        rwf: optional random weight factorisation options (``RWF(mean=1.0, std=0.1)``).

    Raises:
        ValueError: a size below 1, or an embedding built for another ``in_dim``.

    Example:
        >>> net = MLP(2, 1, width=64, depth=4)  # 2-64-64-64-64-1
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 1])
        >>> net = MLP(2, 1, embedding=FourierFeatures(2, out_dim=64, sigma=2.0), rwf=RWF())
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
        check_sizes("MLP", in_dim=in_dim, out_dim=out_dim, width=width, depth=depth)
        activation = activation_factory("MLP", activation)
        layers: list[nn.Module] = [] if embedding is None else [embedding]
        dims = [embedded_dim("MLP", in_dim, embedding)] + [width] * depth
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), activation()]
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
        if rwf is not None:
            rwf.apply(self)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim]`` -> ``[N, out_dim]``."""
        return self.net(x)
