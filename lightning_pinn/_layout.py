"""The layout of the shared parameters θ_s: which parameters, in which order, in which blocks.

The columns of ``J`` follow this layout: the network's parameters first, then every other
trainable parameter of the module (e.g. the unknown PDE coefficients of inverse problems),
adapters excluded. The blocks are the column ranges of those two groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

__all__ = ["ParameterLayout"]


@dataclass(frozen=True)
class ParameterLayout:
    """θ_s and its blocks.

    Attributes:
        shared: the shared parameters, network first, then the rest (module order).
        blocks: column ranges of ``J`` per block: ``[network]`` or ``[network, rest]``.
    """

    shared: list[nn.Parameter]
    blocks: list[slice]

    @property
    def numel(self) -> int:
        """P, the number of columns of ``J``."""
        return sum(p.numel() for p in self.shared)

    @classmethod
    def build(
        cls,
        parameters: Iterable[nn.Parameter],
        network: Iterable[nn.Parameter],
        exclude: Iterable[nn.Parameter] = (),
    ) -> ParameterLayout:
        """The layout of the trainable ``parameters`` not in ``exclude``.

        Args:
            parameters: every parameter of the module, in module order.
            network: the network's parameters (the first block).
            exclude: parameters outside θ_s (the adapters).

        Example:
            >>> net = nn.Linear(2, 1)
            >>> layout = ParameterLayout.build(net.parameters(), net.parameters())
            >>> layout.blocks, layout.numel
            ([slice(0, 3, None)], 3)
        """
        skip = {id(p) for p in exclude}
        net = {id(p) for p in network}
        params = [p for p in parameters if p.requires_grad and id(p) not in skip]
        net_params = [p for p in params if id(p) in net]
        shared = net_params + [p for p in params if id(p) not in net]
        n_net = sum(p.numel() for p in net_params)
        total = sum(p.numel() for p in shared)
        blocks = [slice(0, n_net)] + ([slice(n_net, total)] if total > n_net else [])
        return cls(shared, blocks)
