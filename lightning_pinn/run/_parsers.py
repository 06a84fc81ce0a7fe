"""Value parsers of the run options: text in (a flag's value), typed value out.

Each raises ``ValueError`` with a message that shows the bad value and the expected form; the
command line turns it into argparse's one-line usage error.
"""

from __future__ import annotations

import json
from typing import Any

from lightning_pinn.diagnostics import resolve_interventions
from lightning_pinn.strategies import strategy_names

__all__ = [
    "json_object",
    "non_negative_float",
    "parse_candidates",
    "parse_devices",
    "parse_interventions",
    "parse_points",
    "positive_float",
    "positive_int",
    "seed_int",
    "SEED_MAX",
]


def positive_int(text: str | int) -> int:
    """``text`` as an integer >= 1.

    Raises:
        ValueError: not an integer, or below 1.
    """
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"expected a positive integer, got {value}")
    return value


SEED_MAX = 2**32 - 1  # numpy's and the samplers' seed range


def seed_int(text: str | int) -> int:
    """``text`` as a seed: an integer in ``[0, 2**32 - 1]``.

    Raises:
        ValueError: not an integer, or out of that range.
    """
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"expected a seed in [0, {SEED_MAX}], got {value}")
    return value


def positive_float(text: str | float) -> float:
    """``text`` as a number > 0.

    Raises:
        ValueError: not a number, or not positive.
    """
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"expected a positive number, got {value}")
    return value


def non_negative_float(text: str | float) -> float:
    """``text`` as a finite number >= 0.

    Raises:
        ValueError: not a number, negative, or not finite.
    """
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"expected a finite number >= 0, got {value}")
    return value


def parse_points(text: str) -> dict[str, int]:
    """``"residual=500,initial=100"`` as ``{"residual": 500, "initial": 100}``.

    Raises:
        ValueError: an item without ``=`` or a count that is not a positive integer.
    """
    out: dict[str, int] = {}
    for item in text.split(","):
        name, sep, n = item.partition("=")
        if not sep:
            raise ValueError(f"expected NAME=COUNT[,NAME=COUNT], got {text!r}")
        out[name.strip()] = positive_int(n)
    return out


def json_object(text: str) -> dict[str, Any]:
    """A JSON object given on the command line.

    Raises:
        ValueError: invalid JSON, or JSON that is not an object.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a JSON object, got {text!r}: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {text!r}")
    return value


def parse_interventions(text: str) -> dict[str, str]:
    """``"directional=reweight,low=none"`` as a regime -> intervention mapping (validated).

    Raises:
        ValueError: malformed text, an unknown regime or an unknown intervention.
    """
    mapping: dict[str, str] = {}
    for item in text.split(","):
        regime, sep, strategy = item.partition("=")
        if not sep or not regime.strip() or not strategy.strip():
            raise ValueError(f"expected REGIME=STRATEGY[,REGIME=STRATEGY...], got {text!r}")
        mapping[regime.strip()] = strategy.strip()
    resolve_interventions(mapping)
    return mapping


def parse_candidates(text: str) -> list[str]:
    """``"none,reweight,surgery"`` as a list of registered strategy names (validated).

    Raises:
        ValueError: an empty entry or a name that is not a registered strategy.
    """
    names = [item.strip() for item in text.split(",")]
    if not all(names):
        raise ValueError(f"expected STRATEGY[,STRATEGY...], got {text!r}")
    valid = strategy_names()
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(
            f"unknown candidate(s) {unknown}; registered strategies: {', '.join(valid)}"
        )
    return names


def parse_devices(text: str) -> int | str:
    """Lightning's ``devices``: a count (``"2"`` -> 2) or a spec such as ``"auto"``/``"0,1"``.

    Raises:
        ValueError: a count of 0.
    """
    if text.isdigit() and int(text) < 1:
        raise ValueError(
            f"expected a device count >= 1 or a spec such as auto or 0,1, got {text!r}"
        )
    return int(text) if text.isdigit() else text
