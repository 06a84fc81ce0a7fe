"""The ``adapters`` strategy: per-loss adapters on the trunk plus reweighting."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_pinn.adapters import Target
from lightning_pinn.strategies._base import check_num_losses
from lightning_pinn.strategies._rules import ReweightRule
from lightning_pinn.strategies.reweight import ReweightStrategy, RuleName

__all__ = ["AdapterStrategy", "Routing"]

Routing = Literal["own", "shared"]
_ROUTINGS = ("own", "shared")


class AdapterStrategy(ReweightStrategy):
    """Per-loss adapters (``PerLossAdapter``) with a reweighted shared update.

    The shared update is the reweighted combination ``λ @ J`` of :class:`ReweightStrategy`;
    the weights' norms are those of ``J`` (shared parameters only, not the adapters). The
    module wraps its network in ``PerLossAdapter(**adapter_options())``, computes for each
    loss the adapter gradients :meth:`adapter_inputs` asks for, and writes what
    :meth:`adapter_updates` returns: with ``routing="own"`` adapter k moves on
    ``λ_k ∇_{φ_k} L_k`` only; with ``"shared"`` every adapter moves on ``Σ_k λ_k ∇_φ L_k``
    (the ablation). See docs/concepts.md.

    Args:
        num_losses: K >= 2, one adapter per loss (optional: the module supplies it).
        reweighting: the rule of the shared update by name (see :class:`ReweightStrategy`).
        reweighting_options: keyword arguments of the named rule (e.g. ``{"max_weight": 100}``).
        rank: adapter rank r >= 1.
        alpha: adapter scaling numerator (``scaling = alpha / r``); None means ``alpha = r``.
        routing: ``"own"`` or ``"shared"``.
        adapter_lr_mult: learning-rate multiplier of the adapter parameter group (>= 0;
            default 0.1, chosen on the regime map, see docs/results.md).
        target: which ``nn.Linear`` layers get adapters (None: all wide enough for the rank).
        adapter_seed: seed of the adapter initialisation (identical on every DDP rank).
        rule: the rule as an object, e.g. ``GradNormRule(every=100)``.

    Raises:
        ValueError: bad routing, rank, alpha, learning-rate multiplier or ``num_losses``.

    Example:
        >>> s = AdapterStrategy(rank=4, routing="own", rule=GradNormRule(every=100))
        >>> s.bind(3).adapter_options()["rank"]
        4
    """

    name = "adapters"
    uses_adapters = True

    def __init__(
        self,
        num_losses: int | None = None,
        reweighting: RuleName | str | None = None,
        reweighting_options: Mapping[str, Any] | None = None,
        rank: int = 4,
        alpha: float | None = None,
        routing: Routing = "own",
        adapter_lr_mult: float = 0.1,
        target: Target = None,
        adapter_seed: int = 0,
        *,
        rule: ReweightRule | None = None,
    ) -> None:
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
        self.rank = rank
        self.alpha = alpha
        self.routing = routing
        self.adapter_lr_mult = float(adapter_lr_mult)
        self.target = target
        self.adapter_seed = int(adapter_seed)
        super().__init__(num_losses, reweighting, reweighting_options, rule=rule)

    def _check_num_losses(self, num_losses: int) -> None:
        try:
            check_num_losses(num_losses, minimum=2)
        except ValueError:
            raise ValueError(
                f"the adapters strategy needs num_losses >= 2 (one adapter per loss), got "
                f"{num_losses!r}; use strategy='none' or 'reweight' for a single loss"
            ) from None

    def adapter_options(self) -> dict[str, Any]:
        """Keyword arguments for ``PerLossAdapter(trunk, **adapter_options())``."""
        return {
            "num_losses": self.num_losses,
            "rank": self.rank,
            "alpha": self.alpha,
            "target": self.target,
            "seed": self.adapter_seed,
        }

    def adapter_inputs(self, adapters: Sequence[Sequence[Tensor]]) -> list[list[Tensor]]:
        """For each loss k, the adapter parameters whose gradient of ``L_k`` is needed.

        ``"own"``: adapter k's parameters; ``"shared"``: every adapter's, adapter 0 first.

        Args:
            adapters: the parameters of adapter j, for j = 0..K-1.
        """
        if self.routing == "own":
            return [list(params) for params in adapters]
        every = [p for params in adapters for p in params]
        return [every] * len(adapters)

    def adapter_updates(
        self, grads: Sequence[Tensor], weights: Tensor, sizes: Sequence[int]
    ) -> list[Tensor]:
        """The flat update of each adapter j: ``λ_j h_j`` (own) or its slice of ``Σ_k λ_k h_k``.

        Args:
            grads: for each loss k, the flat gradient ``h_k`` of ``L_k`` over
                ``adapter_inputs()[k]``.
            weights: the per-loss weights ``[K]``.
            sizes: number of elements ``n_j`` of adapter j.

        Returns:
            K flat vectors, adapter j's of shape ``[n_j]``.
        """
        if self.routing == "own":
            return [weights[k] * h for k, h in enumerate(grads)]
        combined = torch.stack(list(grads)).mul(weights[:, None]).sum(0)  # (sum_j n_j,)
        return list(torch.split(combined, list(sizes)))

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
