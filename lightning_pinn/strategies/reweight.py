"""The ``reweight`` strategy: ``d = Σ_k λ_k g_k`` with λ from a reweighting rule (DESIGN §4)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch  # noqa: F401 (the docstring examples use it)
from torch import Tensor

from lightning_pinn.strategies import register_strategy
from lightning_pinn.strategies._base import Strategy
from lightning_pinn.strategies._relobralo import ReLoBRaLoRule
from lightning_pinn.strategies._rules import FixedRule, GradNormRule, LRARule, ReweightRule

__all__ = [
    "RULE_NAMES",
    "ReweightRule",
    "ReweightStrategy",
    "RuleName",
    "build_rule",
    "row_norms",
]

RuleName = Literal["gradnorm", "lra", "relobralo", "fixed", "none"]

_RULES: dict[str, type[ReweightRule]] = {
    "gradnorm": GradNormRule,
    "lra": LRARule,
    "relobralo": ReLoBRaLoRule,
    "fixed": FixedRule,
    "none": FixedRule,  # alias: all ones
}
RULE_NAMES: tuple[str, ...] = tuple(_RULES)


def build_rule(name: str, num_losses: int, **options: Any) -> ReweightRule:
    """Build a reweighting rule by name.

    Args:
        name: one of :data:`RULE_NAMES` (``"none"`` is ``"fixed"`` with all-ones weights).
        num_losses: K.
        **options: the rule's keyword arguments (e.g. ``ema=0.9``, ``max_weight=100.0``).

    Raises:
        ValueError: unknown rule name or option (the message lists the valid ones).

    Example:
        >>> rule = build_rule("gradnorm", 3, ema=0.5)
        >>> rule(torch.tensor([1.0, 2.0, 4.0]), torch.ones(3), torch.eye(3)).shape
        torch.Size([3])
    """
    if name not in _RULES:
        raise ValueError(
            f"unknown reweighting rule {name!r}; valid rules are {', '.join(map(repr, _RULES))}"
        )
    cls = _RULES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    accepted = [p for p in accepted if p != "num_losses"]
    if name == "none":
        accepted = ["max_weight"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for reweighting rule {name!r}; valid options are "
            f"{accepted}"
        )
    return cls(num_losses, **options)


def row_norms(jac: Tensor) -> Tensor:
    """Euclidean norm of each row of ``jac`` ``[K, P]``, safe from fp32 overflow: ``[K]``."""
    scale = jac.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-30)  # (K, 1)
    return (jac.detach() / scale).norm(dim=1) * scale.squeeze(1)


@register_strategy
class ReweightStrategy(Strategy):
    """Scalar reweighting: ``d = Σ_k λ_k g_k = λ @ J``.

    The weights come from a rule (:data:`RULE_NAMES`) fed with quantities the step has already
    computed: the per-loss gradient norms over the shared parameters (rows of ``J``), the loss
    values and ``J`` itself. No extra backward pass and no host synchronisation. With adapters,
    the norms are taken over the shared parameters only (the rows of ``J``), never over the
    adapters: bound the weights with ``reweighting_options={"max_weight": ...}`` when adapters
    may absorb a loss and drive its shared-gradient norm towards zero.

    Args:
        num_losses: K.
        reweighting: the rule, ``"gradnorm"`` (default), ``"lra"``, ``"relobralo"``,
            ``"fixed"`` or ``"none"``.
        reweighting_options: keyword arguments of the rule.

    Example:
        >>> s = ReweightStrategy(2)
        >>> d, w = s.update(torch.tensor([[1.0, 0.0], [0.0, 3.0]]), torch.ones(2))
        >>> d.shape, w.shape
        (torch.Size([2]), torch.Size([2]))
    """

    name = "reweight"

    def __init__(
        self,
        num_losses: int,
        reweighting: RuleName | str = "gradnorm",
        reweighting_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.num_losses = num_losses
        self.reweighting = reweighting
        self.reweighting_options = dict(reweighting_options or {})
        self.rule = build_rule(reweighting, num_losses, **self.reweighting_options)

    def update(
        self, jac: Tensor, losses: Tensor, blocks: Sequence[slice] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(λ @ J, λ)``: the update ``[P]`` and the weights ``[K]``.

        Args:
            jac: per-loss gradients ``[K, P]``.
            losses: raw loss values ``[K]``.
            blocks: unused (scalar weights act on all parameters alike).
        """
        if jac.ndim != 2 or jac.shape[0] != self.num_losses:
            raise ValueError(f"jac must have shape [{self.num_losses}, P], got {tuple(jac.shape)}")
        weights = self.rule(row_norms(jac), losses.detach().reshape(-1).to(jac.device), jac)
        return weights.to(jac.dtype) @ jac, weights

    def options(self) -> dict[str, Any]:
        return {
            "num_losses": self.num_losses,
            "reweighting": self.reweighting,
            "reweighting_options": dict(self.reweighting_options),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.reweighting, "rule_state": self.rule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("rule", self.reweighting) != self.reweighting:
            raise ValueError(
                f"checkpoint holds the state of reweighting rule {state['rule']!r} but this "
                f"strategy uses {self.reweighting!r}; build it with "
                f"reweighting={state['rule']!r}"
            )
        self.rule.load_state_dict(state["rule_state"])
