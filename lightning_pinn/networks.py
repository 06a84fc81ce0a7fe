"""Default trunks: a tanh multilayer perceptron with Xavier initialisation."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Fully connected network ``in_dim -> [width] * depth -> out_dim``.

    Args:
        in_dim: input dimension d.
        out_dim: output dimension m.
        width: hidden width.
        depth: number of hidden layers.
        activation: activation module factory (``nn.Tanh`` by default).

    Example:
        >>> net = MLP(2, 1, width=64, depth=4)  # 2-64-64-64-64-1
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        width: int = 64,
        depth: int = 4,
        activation: Callable[[], nn.Module] = nn.Tanh,
    ) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or width < 1 or depth < 1:
            raise ValueError(
                f"MLP sizes must be >= 1, got in_dim={in_dim}, out_dim={out_dim}, "
                f"width={width}, depth={depth}"
            )
        layers: list[nn.Module] = []
        dims = [in_dim] + [width] * depth
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), activation()]
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
