"""Gradient strategies: how the K per-loss gradients become one update (DESIGN §4)."""

from __future__ import annotations

import inspect
from typing import Any

from lightning_pinn.strategies._base import NoneStrategy, Strategy

__all__ = [
    "AGGREGATOR_NAMES",
    "RULE_NAMES",
    "STRATEGY_NAMES",
    "AdapterStrategy",
    "NoneStrategy",
    "ReweightRule",
    "ReweightStrategy",
    "Strategy",
    "SurgeryStrategy",
    "build_rule",
    "build_strategy",
    "register_strategy",
    "strategy_names",
]

_REGISTRY: dict[str, type[Strategy]] = {"none": NoneStrategy}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class to the registry under ``cls.name`` (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> tuple[str, ...]:
    """The registered strategy names."""
    return tuple(_REGISTRY)


def build_strategy(name: str, **options: Any) -> Strategy:
    """Build a strategy by name, passing it the options its constructor accepts.

    Options meant for other strategies (e.g. ``rank`` when building ``reweight``) are ignored,
    so a module can carry one set of options and switch between strategies.

    Raises:
        ValueError: unknown strategy name (the message lists the valid ones).
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown strategy {name!r}; valid strategies are {', '.join(map(repr, _REGISTRY))}"
        )
    cls = _REGISTRY[name]
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted}
    return cls(**kwargs)


# The built-in strategies register themselves on import (they need register_strategy above).
from lightning_pinn.strategies.adapters import AdapterStrategy  # noqa: E402
from lightning_pinn.strategies.reweight import (  # noqa: E402
    RULE_NAMES,
    ReweightRule,
    ReweightStrategy,
    build_rule,
)
from lightning_pinn.strategies.surgery import AGGREGATOR_NAMES, SurgeryStrategy  # noqa: E402

STRATEGY_NAMES = strategy_names()
