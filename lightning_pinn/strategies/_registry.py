"""The one registry of strategy names: name -> class, and building a strategy from a name."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lightning_pinn.strategies._base import Strategy

__all__ = [
    "build_strategy",
    "register_strategy",
    "resolve_strategy",
    "strategy_names",
    "strategy_option_names",
    "validate_strategy_options",
]

_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class to the registry under ``cls.name`` (usable as a decorator).

    Raises:
        TypeError: ``cls`` is not a :class:`Strategy` subclass with a ``name``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Strategy) and cls.name):
        raise TypeError(f"register_strategy needs a Strategy subclass with a name, got {cls!r}")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> tuple[str, ...]:
    """The registered strategy names (``none``, ``reweight``, ``adapters``, ``surgery``, ...)."""
    return tuple(_REGISTRY)


def _accepted(cls: type[Strategy]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    return [p for p in params if p not in ("self", "num_losses")]


def strategy_option_names(name: str | None = None) -> tuple[str, ...]:
    """The options of strategy ``name``, or of all registered strategies (sorted)."""
    classes = [_REGISTRY[_check_name(name)]] if name is not None else list(_REGISTRY.values())
    return tuple(sorted({p for cls in classes for p in _accepted(cls)}))


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"unknown strategy {name!r}; valid strategies are {', '.join(map(repr, _REGISTRY))}"
        )
    return name


def validate_strategy_options(options: Mapping[str, Any]) -> None:
    """Raise unless every key is an option of some registered strategy.

    Raises:
        ValueError: an unknown option (the message lists the valid ones).
    """
    valid = strategy_option_names()
    unknown = sorted(set(options) - set(valid) - {"num_losses"})
    if unknown:
        raise ValueError(
            f"unknown strategy option(s) {unknown}; valid options are {list(valid)}; or pass a "
            "strategy object, e.g. strategy=AdapterStrategy(rank=8)"
        )


def build_strategy(name: str, **options: Any) -> Strategy:
    """Build a registered strategy by name.

    Options of the other registered strategies (e.g. ``rank`` when building ``reweight``) are
    ignored, so one set of options can follow a module across strategy switches; an option no
    strategy knows raises.

    Args:
        name: one of :func:`strategy_names`.
        **options: constructor options; ``num_losses`` binds the strategy at once.

    Raises:
        ValueError: unknown strategy name or option (the message lists the valid ones).

    Example:
        >>> build_strategy("adapters", rank=8).rank
        8
    """
    cls = _REGISTRY[_check_name(name)]
    validate_strategy_options(options)
    accepted = set(_accepted(cls)) | {"num_losses"}
    return cls(**{k: v for k, v in options.items() if k in accepted})


def resolve_strategy(strategy: str | Strategy, **options: Any) -> Strategy:
    """A strategy object from a name (and options) or an object (returned as is).

    Args:
        strategy: a name of :func:`strategy_names` or a :class:`Strategy`.
        **options: options of a named strategy (none allowed with an object: they belong in
            its constructor).

    Raises:
        ValueError: unknown name or option, or options given with an object.
        TypeError: neither a name nor a :class:`Strategy`.
    """
    if isinstance(strategy, Strategy):
        if options:
            raise ValueError(
                f"options {sorted(options)} were given with the strategy object {strategy!r}; "
                f"pass them to its constructor, e.g. {type(strategy).__name__}(...)"
            )
        return strategy
    if isinstance(strategy, str):
        return build_strategy(strategy, **options)
    raise TypeError(
        f"strategy must be a name ({', '.join(map(repr, _REGISTRY))}) or a Strategy object, "
        f"got {type(strategy).__name__}"
    )
