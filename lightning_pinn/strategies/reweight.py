"""The ``reweight`` strategy: ``d = Σ_k λ_k g_k`` with λ from a reweighting rule."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch  # noqa: F401 (the docstring examples use it)
from torch import Tensor

from lightning_pinn.gradients import row_norms
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


def build_rule(name: str, num_losses: int | None = None, **options: Any) -> ReweightRule:
    """Build a reweighting rule by name.

    Args:
        name: one of :data:`RULE_NAMES` (``"none"`` is ``"fixed"`` with all-ones weights).
        num_losses: K (optional: the strategy holding the rule binds it).
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


class ReweightStrategy(Strategy):
    """Scalar reweighting: ``d = Σ_k λ_k g_k = λ @ J``.

    The weights come from a rule (a :class:`ReweightRule` object, or a name of
    :data:`RULE_NAMES` with its options) fed with quantities the step has already computed:
    the per-loss gradient norms over the shared parameters (rows of ``J``, by
    :func:`~lightning_pinn.gradients.row_norms`), the loss values and ``J`` itself. No extra
    backward pass and no host synchronisation. With adapters, the norms are taken over the
    shared parameters only (the rows of ``J``), never over the adapters: bound the weights
    with ``max_weight`` when adapters may absorb a loss and drive its shared-gradient norm
    towards zero.

    Args:
        num_losses: K (optional: the module supplies it when it adopts the strategy).
        reweighting: the rule by name, ``"gradnorm"`` (default), ``"lra"``, ``"relobralo"``,
            ``"fixed"`` or ``"none"``.
        reweighting_options: keyword arguments of the named rule.
        rule: the rule as an object, e.g. ``GradNormRule(every=100)`` (instead of
            ``reweighting``/``reweighting_options``).

    Raises:
        ValueError: unknown rule or option, or both ``rule`` and ``reweighting`` given.

    Example:
        >>> s = ReweightStrategy(rule=GradNormRule(ema=0.5))
        >>> d, w = s.update(torch.tensor([[1.0, 0.0], [0.0, 3.0]]), torch.ones(2))
        >>> d.shape, w.shape
        (torch.Size([2]), torch.Size([2]))
    """

    name = "reweight"

    def __init__(
        self,
        num_losses: int | None = None,
        reweighting: RuleName | str | None = None,
        reweighting_options: Mapping[str, Any] | None = None,
        *,
        rule: ReweightRule | None = None,
    ) -> None:
        if rule is not None:
            if reweighting is not None or reweighting_options:
                raise ValueError(
                    f"give the reweighting rule once: rule={rule!r} or reweighting="
                    f"{reweighting!r} with reweighting_options, not both"
                )
            if not isinstance(rule, ReweightRule):
                raise TypeError(
                    f"rule must be a ReweightRule (e.g. GradNormRule()), got {type(rule).__name__}"
                )
            self.rule = rule
            self.reweighting: str = rule.name
            self._rule_options: dict[str, Any] | None = None  # read from the rule
        else:
            self.reweighting = reweighting if reweighting is not None else "gradnorm"
            self._rule_options = dict(reweighting_options or {})
            self.rule = build_rule(self.reweighting, **self._rule_options)
        if num_losses is not None:
            self.bind(num_losses)

    @property
    def reweighting_options(self) -> dict[str, Any]:
        """Keyword arguments of the rule (as given by name, or read from the rule object)."""
        if self._rule_options is None:
            return self.rule.options()
        return dict(self._rule_options)

    def _on_bind(self, num_losses: int) -> None:
        self.rule.bind(num_losses)

    def update(
        self, jac: Tensor, losses: Tensor, blocks: Sequence[slice] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(λ @ J, λ)``: the update ``[P]`` and the weights ``[K]``.

        Args:
            jac: per-loss gradients ``[K, P]``.
            losses: raw loss values ``[K]``.
            blocks: unused (scalar weights act on all parameters alike).
        """
        self._check_rows(jac)
        weights = self.rule(row_norms(jac), losses.detach().reshape(-1).to(jac.device), jac)
        return weights.to(jac.dtype) @ jac, weights

    def stateful_update(self) -> bool:
        return self.rule.refreshes_next()

    def options(self) -> dict[str, Any]:
        return {
            **self._bound_options(),
            "reweighting": self.reweighting,
            "reweighting_options": self.reweighting_options,
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
