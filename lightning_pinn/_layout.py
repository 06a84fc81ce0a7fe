"""The layout of the shared parameters θ_s: which parameters, in which order, in which blocks.

The columns of ``J`` follow this layout: the network's parameters first, then every other
trainable parameter of the module (e.g. the unknown PDE coefficients of inverse problems),
adapters excluded. The blocks are the column ranges of those two groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from lightning_pinn._adapter_config import fold_and_unwrap, unwrap, wrap_in_adapters

__all__ = ["ParameterLayout", "ParameterViews"]


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


class ParameterViews:
    """The module's parameter views: θ_s (cached layout), its blocks and the adapters.

    Mixed into :class:`~lightning_pinn.PINNModule`, which holds ``model``, ``num_losses``,
    ``lr``, ``_adapter_config`` (how the adapters were built, or None) and ``_layout``.
    """

    model: nn.Module
    num_losses: int
    loss_names: tuple[str, ...]
    lr: float
    _adapter_config: dict[str, Any] | None
    _layout: ParameterLayout | None

    if TYPE_CHECKING:  # nn.Module's, through the LightningModule

        def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    @property
    def has_adapters(self) -> bool:
        """Whether the network is wrapped in :class:`PerLossAdapter`."""
        return self._adapter_config is not None

    def _parameter_layout(self) -> ParameterLayout:
        if self._layout is None:
            adapters = self._all_adapter_parameters()
            self._layout = ParameterLayout.build(
                self.parameters(), self.model.parameters(), exclude=adapters
            )
        return self._layout

    def shared_parameters(self) -> list[nn.Parameter]:
        """θ_s: every trainable parameter except adapters; network first, then the rest.

        Cached after the first call (the hot path reads it every step); the cache is rebuilt
        when adapters are attached. Call :meth:`refresh_parameters` after changing
        ``requires_grad`` flags by hand.
        """
        return self._parameter_layout().shared

    def parameter_blocks(self) -> list[slice]:
        """Column ranges of ``J`` per parameter block: the network, then everything else."""
        return self._parameter_layout().blocks

    def refresh_parameters(self) -> None:
        """Forget the cached parameter layout (θ_s and its blocks)."""
        self._layout = None

    def adapter_parameters(self, k: int) -> list[nn.Parameter]:
        """Parameters of adapter k (empty without adapters)."""
        return list(self.model.adapter_parameters(k)) if self.has_adapters else []

    def _adapter_groups(self) -> list[list[nn.Parameter]]:
        return [self.adapter_parameters(k) for k in range(self.num_losses)]

    def _all_adapter_parameters(self) -> list[nn.Parameter]:
        """Every adapter's parameters, adapter 0 first."""
        return [p for group in self._adapter_groups() for p in group]

    def _attach_adapters(self, config: dict[str, Any]) -> None:
        self.model = wrap_in_adapters(self.model, self.loss_names, config)
        self._adapter_config = dict(config)
        self._layout = None

    def _detach_adapters(self, *, fold: bool) -> None:
        """Back to the plain trunk: ``fold`` the active adapters into its weights (the
        function is kept), or drop them (weights about to be loaded over the trunk)."""
        self.model = fold_and_unwrap(self.model) if fold else unwrap(self.model)
        self._adapter_config = None
        self._layout = None

    def _adapter_lr(self) -> float:
        assert self._adapter_config is not None
        return self.lr * float(self._adapter_config["lr_mult"])
