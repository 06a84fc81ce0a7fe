"""The ``adapters`` strategy: per-loss adapters on the trunk plus reweighting (DESIGN §4, §5)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from lightning_pinn.adapters import Target
from lightning_pinn.strategies import register_strategy
from lightning_pinn.strategies.reweight import ReweightStrategy, RuleName

__all__ = ["AdapterStrategy", "Routing"]

Routing = Literal["own", "shared"]
_ROUTINGS = ("own", "shared")


@register_strategy
class AdapterStrategy(ReweightStrategy):
    """Per-loss adapters (``PerLossAdapter``) with a reweighted shared update.

    The shared update is the reweighted combination ``λ @ J`` of :class:`ReweightStrategy`;
    the weights' norms are those of ``J`` (shared parameters only, not the adapters). The
    module wraps its network in ``PerLossAdapter(rank, alpha, target, seed=adapter_seed)``
    and routes the adapter gradients: with ``routing="own"`` adapter k moves on
    ``λ_k ∇_{φ_k} L_k`` only; with ``"shared"`` every adapter moves on ``Σ_k λ_k ∇_φ L_k``
    (the ablation). This object only validates and carries those options.

    Args:
        num_losses: K (>= 2: one adapter per loss).
        reweighting: the rule of the shared update (see :class:`ReweightStrategy`).
        reweighting_options: keyword arguments of the rule (e.g. ``{"max_weight": 100.0}``).
        rank: adapter rank r >= 1.
        alpha: adapter scaling numerator (``scaling = alpha / r``); None means ``alpha = r``.
        routing: ``"own"`` or ``"shared"``.
        adapter_lr_mult: learning-rate multiplier of the adapter parameter group (>= 0;
            default 0.1, chosen on the regime map, see docs/results.md).
        target: which ``nn.Linear`` layers get adapters (None: all wide enough for the rank).
        adapter_seed: seed of the adapter initialisation (identical on every DDP rank).

    Raises:
        ValueError: bad routing, rank, alpha, learning-rate multiplier or ``num_losses``.
    """

    name = "adapters"
    uses_adapters = True

    def __init__(
        self,
        num_losses: int,
        reweighting: RuleName | str = "gradnorm",
        reweighting_options: Mapping[str, Any] | None = None,
        rank: int = 4,
        alpha: float | None = None,
        routing: Routing = "own",
        adapter_lr_mult: float = 0.1,
        target: Target = None,
        adapter_seed: int = 0,
    ) -> None:
        if isinstance(num_losses, bool) or not isinstance(num_losses, int) or num_losses < 2:
            raise ValueError(
                f"the adapters strategy needs num_losses >= 2 (one adapter per loss), got "
                f"{num_losses!r}; use strategy='none' or 'reweight' for a single loss"
            )
        if routing not in _ROUTINGS:
            raise ValueError(f"routing must be one of {_ROUTINGS}, got {routing!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
            raise ValueError(f"rank must be a positive integer, got {rank!r}; try rank=4")
        if alpha is not None and not (alpha > 0 and math.isfinite(alpha)):
            raise ValueError(
                f"alpha must be positive and finite, or None (alpha = rank), got {alpha!r}"
            )
        if not (adapter_lr_mult >= 0 and math.isfinite(adapter_lr_mult)):
            raise ValueError(
                f"adapter_lr_mult must be a finite number >= 0, got {adapter_lr_mult!r}"
            )
        super().__init__(num_losses, reweighting, reweighting_options)
        self.rank = rank
        self.alpha = alpha
        self.routing = routing
        self.adapter_lr_mult = float(adapter_lr_mult)
        self.target = target
        self.adapter_seed = int(adapter_seed)

    def adapter_options(self) -> dict[str, Any]:
        """Keyword arguments for ``PerLossAdapter(trunk, **adapter_options())``."""
        return {
            "num_losses": self.num_losses,
            "rank": self.rank,
            "alpha": self.alpha,
            "target": self.target,
            "seed": self.adapter_seed,
        }

    def options(self) -> dict[str, Any]:
        return {
            **super().options(),
            "rank": self.rank,
            "alpha": self.alpha,
            "routing": self.routing,
            "adapter_lr_mult": self.adapter_lr_mult,
            "target": self.target,
            "adapter_seed": self.adapter_seed,
        }
