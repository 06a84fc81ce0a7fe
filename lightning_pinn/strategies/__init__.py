"""Gradient strategies: how the K per-loss gradients become one update (docs/concepts.md).

Strategies and reweighting rules are objects built without K (the module binds them when it
adopts them); a registered name is a shortcut for the object with default options::

    rule = GradNormRule(every=100)
    PINNModule(net, loss_names=names, strategy=AdapterStrategy(rank=4, rule=rule))
    PINNModule(net, loss_names=names, strategy="adapters")  # AdapterStrategy()
"""

from __future__ import annotations

from lightning_pinn.strategies._base import NoneStrategy, Strategy
from lightning_pinn.strategies._registry import (
    build_strategy,
    register_strategy,
    resolve_strategy,
    strategy_names,
    strategy_option_names,
    validate_strategy_options,
)
from lightning_pinn.strategies._relobralo import ReLoBRaLoRule
from lightning_pinn.strategies._rules import FixedRule, GradNormRule, LRARule
from lightning_pinn.strategies.adapters import AdapterStrategy
from lightning_pinn.strategies.reweight import (
    RULE_NAMES,
    ReweightRule,
    ReweightStrategy,
    build_rule,
)
from lightning_pinn.strategies.surgery import AGGREGATOR_NAMES, SurgeryStrategy

__all__ = [
    "AGGREGATOR_NAMES",
    "RULE_NAMES",
    "AdapterStrategy",
    "FixedRule",
    "GradNormRule",
    "LRARule",
    "NoneStrategy",
    "ReLoBRaLoRule",
    "ReweightRule",
    "ReweightStrategy",
    "Strategy",
    "SurgeryStrategy",
    "build_rule",
    "build_strategy",
    "register_strategy",
    "resolve_strategy",
    "strategy_names",
    "strategy_option_names",
    "validate_strategy_options",
]

for _cls in (NoneStrategy, ReweightStrategy, AdapterStrategy, SurgeryStrategy):
    register_strategy(_cls)
del _cls
