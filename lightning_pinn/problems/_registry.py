"""The problem registry: names, variants with preset parameters, validated overrides."""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from typing import Any

from lightning_pinn.problems._base import Problem
from lightning_pinn.problems._time_dependent import TimeDependentProblem

__all__ = ["aliases", "get", "names", "register"]

_REGISTRY: dict[str, tuple[type[Problem], dict[str, Any]]] = {}


def register(name: str, cls: type[Problem], **preset: Any) -> None:
    """Register ``cls`` under ``name`` with preset parameters (a variant such as
    ``convection-b10``)."""
    if name in _REGISTRY:
        raise ValueError(f"problem {name!r} is already registered")
    _REGISTRY[name] = (cls, preset)


def names() -> list[str]:
    """Registered problem names, sorted."""
    return sorted(_REGISTRY)


def _resolved(cls: type[Problem], preset: dict[str, Any]) -> tuple[Any, ...]:
    """``cls`` and every field's value under ``preset`` (defaults filled in), comparable."""
    values = []
    for f in dataclasses.fields(cls):
        if f.name in preset:
            value = preset[f.name]
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = dataclasses.MISSING
        values.append((f.name, repr(value)))
    return (cls, tuple(values))


def aliases() -> dict[str, str]:
    """Registered names that build the same problem as another name: ``{alias: canonical}``.

    Two names are the same configuration when they register the same class with the same
    parameter values once defaults are filled in (``poisson_nd`` is ``poisson_nd-d5``: its
    default ``dim`` is 5). The canonical name is the one with the most preset parameters (the
    explicit variant), then the one registered first (a built-in name stays canonical when a
    user registers the same class again); the others are its aliases. Benchmarks count such a
    configuration once (:func:`lightning_pinn.benchmark.split_configs`).
    """
    order = {name: i for i, name in enumerate(_REGISTRY)}
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name in names():
        cls, preset = _REGISTRY[name]
        groups.setdefault(_resolved(cls, preset), []).append(name)
    out: dict[str, str] = {}
    for group in groups.values():
        canonical = min(group, key=lambda n: (-len(_REGISTRY[n][1]), order[n]))
        out.update({n: canonical for n in group if n != canonical})
    return out


def _check_type(cls: type[Problem], key: str, value: Any) -> None:
    hints = typing.get_type_hints(cls)
    expected = hints.get(key)
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise ValueError(
                f"{cls.name}: override {key}={value!r} must be a finite number (a PDE "
                "coefficient or length; nan or inf makes every loss non-finite)"
            )
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is bool:
        ok = isinstance(value, bool)
    else:
        ok = True
    if not ok:
        raise TypeError(
            f"{cls.name}: override {key}={value!r} has type {type(value).__name__}, "
            f"expected {getattr(expected, '__name__', expected)}"
        )


def _time_dependent_hint(unknown: list[str]) -> str:
    """Where the options of :class:`TimeDependentProblem` exist, when one was misplaced."""
    shared = {f.name for f in dataclasses.fields(TimeDependentProblem)}
    if not shared & set(unknown):
        return ""
    support = [
        f"{n} ({', '.join(cls.hard_conditions) or 'no hard constraints'})"
        for n, (cls, _) in sorted(_REGISTRY.items())
        if issubclass(cls, TimeDependentProblem)
    ]
    return (
        ". hard_constraints, causal_eps and causal_chunks belong to the time-dependent forward "
        f"problems (hard conditions in brackets): {', '.join(support)}"
    )


def get(name: str, **overrides: Any) -> Problem:
    """A registered problem, with parameter overrides.

    Args:
        name: a name from :func:`names`.
        **overrides: problem parameters (dataclass fields), e.g. ``beta=10`` or
            ``n_residual=500``.

    Raises:
        ValueError: unknown name (close matches are listed), unknown override, or a value out
            of range.
        TypeError: an override of the wrong type.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown problem {name!r}.{hint} Registered problems: {', '.join(names())}"
        )
    cls, preset = _REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"problem {name!r} has no parameter(s) {unknown}; valid parameters: {sorted(fields)}"
            + _time_dependent_hint(unknown)
        )
    for key, value in overrides.items():
        _check_type(cls, key, value)
    problem = cls(**{**preset, **overrides})
    problem.name = name  # the registered (variant) name
    return problem
