"""The ``adapters`` strategy: per-loss adapters on the trunk plus reweighting."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_pinn._values import check_integer
from lightning_pinn.adapters import MODES, PREDICTIONS, AdapterForm, Mode, Target
from lightning_pinn.adapters._inject import WIDE
from lightning_pinn.gradients import row_norms
from lightning_pinn.strategies._base import check_num_losses
from lightning_pinn.strategies._rules import FixedRule, ReweightRule
from lightning_pinn.strategies.reweight import ReweightStrategy, RuleName

__all__ = ["DEFAULT_MAX_WEIGHT", "PER_LOSS_REFRESH", "AdapterStrategy", "Routing"]

Routing = Literal["own", "shared"]
_ROUTINGS = ("own", "shared")
_FORMS = ("linear", "nonlinear")
_DESIGN_DEFAULTS = {"mode": "summed", "predict_with": "residual", "form": "linear"}

DEFAULT_MAX_WEIGHT = 100.0
"""Upper bound of the adaptive rule's weights under adapters when the rule sets none: an
adapter can absorb its loss and drive that loss's gradient norm towards zero."""

PER_LOSS_REFRESH = 100
"""Refresh interval (steps) of the default gradient-norm rule in ``"per_loss"`` mode."""


class AdapterStrategy(ReweightStrategy):
    """Per-loss adapters (``PerLossAdapter``) with a reweighted shared update.

    The shared update is the reweighted combination ``λ @ J`` of :class:`ReweightStrategy`.
    The module wraps its network in ``PerLossAdapter(**adapter_options())``, computes for each
    loss the adapter gradients :meth:`adapter_inputs` asks for, and writes what
    :meth:`adapter_updates` returns: with ``routing="own"`` adapter k moves on
    ``λ_k ∇_{φ_k} L_k`` only; with ``"shared"`` every adapter moves on ``Σ_k λ_k ∇_φ L_k``
    (the ablation). See docs/concepts.md.

    Two designs: ``mode="summed"`` (default; every adapter in one function, adapter k's
    gradient masked to loss k) and ``mode="per_loss"`` (loss k evaluated through the trunk and
    adapter k only, so ``Σ_k λ_k L_k(θ, φ_k)`` is an objective and routes the adapters by
    construction; L-BFGS works on it). Measured, ``"per_loss"`` does not solve: nothing
    makes the K functions agree, each loss is met by its own, and the prediction misses the
    other conditions (rel L2 0.16-1.0 on five calibration problems where ``"summed"`` reached
    2e-4-5e-3; docs/results.md). It is kept for studying the design.

    Weights: with ``pathway_norms`` the rule sees each loss's gradient norm over its whole
    pathway, ``n_k = sqrt(‖g_k‖² + ‖h_k‖²)`` (shared parameters and its adapter gradient
    ``h_k``), so an adapter absorbing its loss does not blow the weight up; and an adaptive
    rule without ``max_weight`` is bounded by :data:`DEFAULT_MAX_WEIGHT` (100). In
    ``"per_loss"`` mode the default gradient-norm rule refreshes its weights every
    :data:`PER_LOSS_REFRESH` (100) steps; in ``"summed"`` mode it refreshes every step as it
    always did (pass ``rule=GradNormRule(every=100)`` for the interval).

    Args:
        num_losses: K >= 2, one adapter per loss (optional: the module supplies it).
        reweighting: the rule of the shared update by name (see :class:`ReweightStrategy`).
        reweighting_options: keyword arguments of the named rule (e.g. ``{"max_weight": 100}``).
        rank: adapter rank r >= 1.
        alpha: adapter scaling numerator (``scaling = alpha / r``); None means ``alpha = r``.
        routing: ``"own"`` or ``"shared"``.
        adapter_lr_mult: learning-rate multiplier of the adapter parameter group (>= 0;
            default 0.1, chosen on the regime map, see docs/results.md).
        target: which ``nn.Linear`` layers get adapters (see :class:`PerLossAdapter`); the
            default ``"wide"`` adapts the trainable layers with ``min(in, out) >= rank`` (not
            the scalar output head or a 2-input first layer at rank 4; every trainable layer
            where none is that wide). Every adapter run of the regime map used it; ``None``
            adapts every trainable layer, as ``PerLossAdapter`` does by default.
        adapter_seed: seed of the adapter initialisation (identical on every DDP rank).
        mode: ``"summed"`` or ``"per_loss"`` (see above).
        predict_with: the solution reported in ``"per_loss"`` mode (validation, figures,
            ``merged()``): ``"residual"`` (trunk + the first loss's adapter), ``"mean"``
            (trunk + the mean of the adapters), ``"trunk"``, or a loss name (the module
            resolves it; an unknown name raises a ``ValueError`` listing the losses).
        form: ``"linear"`` (``W + s B_k A_k``) or ``"nonlinear"`` (a tanh branch of rank r;
            not foldable by ``merged()``).
        pathway_norms: measure the rule's norms over shared parameters and the loss's own
            adapter; None (default) means True in ``"per_loss"`` mode and False in
            ``"summed"`` mode (whose default weights are unchanged).
        rule: the rule as an object, e.g. ``GradNormRule(every=100)``. An adaptive rule with
            ``max_weight=None`` is given ``max_weight=DEFAULT_MAX_WEIGHT``.

    Raises:
        ValueError: bad routing, rank, alpha, learning-rate multiplier, ``mode``, ``form``,
            ``predict_with`` or ``num_losses``.

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
        target: Target = WIDE,
        adapter_seed: int = 0,
        mode: Mode = "summed",
        predict_with: str | int = "residual",
        form: AdapterForm = "linear",
        pathway_norms: bool | None = None,
        *,
        rule: ReweightRule | None = None,
    ) -> None:
        if routing not in _ROUTINGS:
            raise ValueError(f"routing must be one of {_ROUTINGS}, got {routing!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if form not in _FORMS:
            raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
        is_index = isinstance(predict_with, int) and not isinstance(predict_with, bool)
        if not (isinstance(predict_with, str) or (is_index and predict_with >= 0)):
            raise ValueError(
                f"predict_with must be one of {PREDICTIONS}, a loss name or a loss index, "
                f"got {predict_with!r}"
            )
        if pathway_norms is not None and not isinstance(pathway_norms, bool):
            raise ValueError(f"pathway_norms must be True, False or None, got {pathway_norms!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
            raise ValueError(f"rank must be a positive integer, got {rank!r}; try rank=4")
        if isinstance(alpha, bool) or isinstance(adapter_lr_mult, bool):
            raise TypeError(
                f"alpha and adapter_lr_mult are numbers, got alpha={alpha!r}, "
                f"adapter_lr_mult={adapter_lr_mult!r}"
            )
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
        self.adapter_seed = check_integer("adapter_seed", adapter_seed)
        self.mode = mode
        self.predict_with = predict_with
        self.form = form
        self.pathway_norms = pathway_norms
        if mode == "per_loss" and rule is None and reweighting in (None, "gradnorm"):
            reweighting_options = {"every": PER_LOSS_REFRESH, **dict(reweighting_options or {})}
        super().__init__(num_losses, reweighting, reweighting_options, rule=rule)
        if self.rule.max_weight is None and not isinstance(self.rule, FixedRule):
            self.rule.max_weight = DEFAULT_MAX_WEIGHT

    @property
    def uses_pathway_norms(self) -> bool:
        """Whether the rule's norms include the adapter gradients (see ``pathway_norms``)."""
        if self.pathway_norms is None:
            return self.mode == "per_loss"
        return self.pathway_norms

    def update(
        self,
        jac: Tensor,
        losses: Tensor,
        blocks: Sequence[slice] | None = None,
        adapter_grads: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(λ @ J, λ)``; with pathway norms, the rule sees ``sqrt(‖g_k‖² + ‖h_k‖²)``.

        Args:
            jac: per-loss gradients over the shared parameters ``[K, P]``.
            losses: raw loss values ``[K]``.
            blocks: unused.
            adapter_grads: for each loss k, the flat gradient ``h_k`` of ``L_k`` over the
                parameters :meth:`adapter_inputs` named (None: shared norms only).
        """
        if adapter_grads is None or not self.uses_pathway_norms:
            return super().update(jac, losses, blocks)
        self._check_rows(jac)
        own = torch.stack([row_norms(h.reshape(1, -1).to(jac.dtype))[0] for h in adapter_grads])
        norms = torch.hypot(row_norms(jac), own)  # (K,), no overflow of the squares
        weights = self.rule(norms, losses.detach().reshape(-1).to(jac.device), jac)
        return weights.to(jac.dtype) @ jac, weights

    def _check_num_losses(self, num_losses: int) -> None:
        try:
            check_num_losses(num_losses, minimum=2)
        except ValueError:
            raise ValueError(
                f"the adapters strategy needs num_losses >= 2 (one adapter per loss), got "
                f"{num_losses!r}; use strategy='none' or 'reweight' for a single loss"
            ) from None

    def adapter_options(self) -> dict[str, Any]:
        """Keyword arguments for ``PerLossAdapter(trunk, **adapter_options())``.

        ``mode``, ``predict_with`` and ``form`` appear only where they differ from their
        defaults.
        """
        return {
            "num_losses": self.num_losses,
            "rank": self.rank,
            "alpha": self.alpha,
            "target": self.target,
            "seed": self.adapter_seed,
            **self._design_options(),
        }

    def _design_options(self) -> dict[str, Any]:
        """``mode``, ``predict_with`` and ``form`` where they differ from the defaults (the
        summed design's options stay what they were); a loss name in ``predict_with`` is
        resolved to its index by the module."""
        design = {"mode": self.mode, "predict_with": self.predict_with, "form": self.form}
        return {k: v for k, v in design.items() if v != _DESIGN_DEFAULTS[k]}

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
            "mode": self.mode,
            "predict_with": self.predict_with,
            "form": self.form,
            "pathway_norms": self.pathway_norms,
        }
