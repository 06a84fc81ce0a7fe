"""``PerLossAdapter``: any trunk with K loss-indexed low-rank adapters (DESIGN §5)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_pinn.adapters._inject import Target, check_num_losses, inject_adapters
from lightning_pinn.adapters._layer import AdapterLinear

__all__ = ["PerLossAdapter"]


class PerLossAdapter(nn.Module):
    """Wrap a trunk and inject K rank-r adapters into its ``nn.Linear`` layers.

    Every targeted layer's effective weight becomes ``W + (alpha / r) Σ_k B_k A_k`` with
    ``B_k = 0`` at creation, so wrapping leaves the function unchanged (it can happen
    mid-training). All adapters are active in every forward: one function ``u``; which loss
    moves which adapter is the training loop's business (``adapter_parameters(k)``).

    The trunk is modified in place (its ``nn.Linear`` layers are replaced by
    :class:`AdapterLinear` wrappers holding the original layers), so its parameters remain
    the same tensor objects and an optimizer's state for them survives the wrap. Works for
    ``nn.Sequential``, nested modules, ``ModuleList``/``ModuleDict``, custom modules with
    ``nn.Linear`` attributes, residual blocks and shared (tied) layers.

    Args:
        trunk: the network (any ``nn.Module`` mapping ``[N, d]`` to ``[N, m]``).
        num_losses: K >= 2.
        rank: adapter rank r, ``1 <= r <= min(in, out)`` of every targeted layer.
        alpha: scaling numerator, ``scaling = alpha / r``; None means ``alpha = r``.
        target: None (every trainable ``nn.Linear`` with ``min(in, out) >= rank``: a scalar
            output head is skipped, and so are layers whose weight the user froze with
            ``requires_grad_(False)``, which keep their function), a regex searched in the
            layer's qualified name (``re.search``), a sequence of exact names, or a predicate
            ``(name, module) -> bool`` (an explicit target may name frozen layers).
        seed: seed of the A factors (identical on every DDP rank, whatever the global RNG).

    Raises:
        ValueError: ``num_losses < 2``; bad rank (the message names the layer) or alpha
            (not positive and finite); no layer matches ``target`` (the message lists the
            module types found); the trunk is already wrapped.

    Example:
        >>> trunk = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
        ...                       nn.Linear(16, 1))
        >>> model = PerLossAdapter(trunk, num_losses=3, rank=2)  # the 16 -> 1 head is too narrow
        >>> model.adapted_layer_names
        ['0', '2']
        >>> len(model.adapter_parameters(0))  # A_0, B_0 of each adapted layer
        4
    """

    def __init__(
        self,
        trunk: nn.Module,
        num_losses: int,
        rank: int = 4,
        alpha: float | None = None,
        target: Target = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(trunk, PerLossAdapter):
            raise ValueError(
                "trunk is already a PerLossAdapter; wrap the plain trunk once (use "
                "model.trunk, or model.merged() to fold the adapters in first)"
            )
        if not isinstance(trunk, nn.Module):
            raise TypeError(f"trunk must be an nn.Module, got {type(trunk).__name__}")
        check_num_losses(num_losses)
        root, _ = inject_adapters(
            trunk, num_losses, rank=rank, alpha=alpha, target=target, seed=seed
        )
        self.trunk = root
        self.num_losses = num_losses
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scaling = self.alpha / rank
        self.seed = seed

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate the trunk (with adapters); same signature as the trunk."""
        return self.trunk(*args, **kwargs)

    def _adapter_layers(self) -> list[tuple[str, AdapterLinear]]:
        return [(n, m) for n, m in self.trunk.named_modules() if isinstance(m, AdapterLinear)]

    @property
    def adapted_layer_names(self) -> list[str]:
        """Qualified names (in the trunk) of the layers holding adapters, in order."""
        return [name for name, _ in self._adapter_layers()]

    def adapter_parameters(self, k: int) -> list[nn.Parameter]:
        """Parameters of adapter ``k``: ``A_k``, ``B_k`` of every adapted layer, in order.

        Raises:
            IndexError: ``k`` outside ``[0, num_losses)``.
        """
        if not 0 <= k < self.num_losses:
            raise IndexError(f"adapter index {k} out of range for num_losses={self.num_losses}")
        return [p for _, layer in self._adapter_layers() for p in layer.adapter_parameters(k)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every trunk parameter that is not an adapter factor, in ``named_parameters`` order."""
        adapters = {id(p) for k in range(self.num_losses) for p in self.adapter_parameters(k)}
        return [p for p in self.trunk.parameters() if id(p) not in adapters]

    def merged(self) -> nn.Module:
        """A deep copy of the plain trunk with the adapters folded into the weights.

        Every :class:`AdapterLinear` becomes an ``nn.Linear`` with weight
        ``W + scaling Σ_k B_k A_k``; outputs equal this module's to floating-point tolerance.
        A layer whose weight is parametrised (e.g. by random weight factorisation) becomes a
        plain ``nn.Linear`` holding the folded effective weight.
        """
        trunk = copy.deepcopy(self.trunk)
        if isinstance(trunk, AdapterLinear):
            return _fold(trunk)
        layers = {id(m): m for m in trunk.modules() if isinstance(m, AdapterLinear)}
        plain = {key: _fold(m) for key, m in layers.items()}
        parents = [p for _, p in trunk.named_modules(remove_duplicate=False)]
        for parent in parents:
            for child_name, child in list(parent._modules.items()):  # tied layers too
                if id(child) in plain:
                    setattr(parent, child_name, plain[id(child)])
        return trunk

    def extra_repr(self) -> str:
        return (
            f"num_losses={self.num_losses}, rank={self.rank}, alpha={self.alpha:g}, "
            f"layers={self.adapted_layer_names}"
        )


def _fold(layer: AdapterLinear) -> nn.Linear:
    plain = layer.base_layer
    weight = layer.merged_weight()  # (out, in)
    if parametrize.is_parametrized(plain, "weight"):
        # A parametrised weight (e.g. RWF) is computed from its originals: a copy into it is
        # lost. Bake the folded weight into a fresh plain layer instead (skip_init: no RNG
        # draw; remove_parametrizations would edit the class the deep copy shares).
        folded = torch.nn.utils.skip_init(
            nn.Linear,
            plain.in_features,
            plain.out_features,
            bias=plain.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            folded.weight.copy_(weight)
            if plain.bias is not None:
                folded.bias.copy_(plain.bias)
        return folded
    with torch.no_grad():
        plain.weight.copy_(weight)
    return plain
