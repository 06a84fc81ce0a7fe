"""Type checks shared by constructors: flags that must be bools, counts that must be ints.

``bool("no")`` is True and ``int(1.5)`` is 1, so a plain conversion turns a mistake into a
different setting; these refuse it instead.
"""

from __future__ import annotations

import operator

__all__ = ["check_flag", "check_integer", "is_integer"]


def is_integer(value: object) -> bool:
    """An integer (``int``, NumPy or 0-d torch integers), not a bool and not a float."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def check_integer(name: str, value: object) -> int:
    """``value`` as an ``int`` if :func:`is_integer`.

    Raises:
        TypeError: anything else, naming ``name`` (1.5 would have been truncated to 1).
    """
    if not is_integer(value):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return operator.index(value)  # type: ignore[arg-type]


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a bool (``bool("no")`` is True, so strings are refused).

    Raises:
        TypeError: anything but ``True`` or ``False``, naming ``name``.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value
