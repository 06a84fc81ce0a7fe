"""First-order optimizers by name: torch's Adam, AdamW and SGD, and SOAP (optional extra)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch.optim import Optimizer

__all__ = ["FirstOrderName", "build_first_order", "first_order_names"]

FirstOrderName = Literal["adam", "adamw", "sgd", "soap"]


def _soap(
    groups: list[dict[str, Any]], lr: float, weight_decay: float, fused: bool = False
) -> Optimizer:
    """SOAP (Vyas et al. 2024, "SOAP: improving and stabilizing Shampoo using Adam") from
    ``pytorch-optimizer``, imported here because it is an optional extra."""
    try:
        from pytorch_optimizer import SOAP
    except ImportError as err:  # pragma: no cover - the dev extra installs it
        raise ImportError(
            "optimizer='soap' needs the package pytorch-optimizer; install the extra with "
            "pip install 'lightning_pinn[soap]' (or pip install pytorch-optimizer)"
        ) from err
    if fused:
        raise ValueError("SOAP has no fused implementation (fused=True)")
    return SOAP(groups, lr=lr, weight_decay=weight_decay)


_Builder = Callable[[list[dict[str, Any]], float, float, bool], Optimizer]


def _torch(cls: type[Optimizer]) -> _Builder:
    def build(
        groups: list[dict[str, Any]], lr: float, weight_decay: float, fused: bool = False
    ) -> Optimizer:
        if fused:  # the fused step takes found_inf: a non-finite update skipped on device
            return cls(groups, lr=lr, weight_decay=weight_decay, fused=True)  # type: ignore[call-arg]
        return cls(groups, lr=lr, weight_decay=weight_decay)

    return build


_BUILDERS: dict[str, _Builder] = {
    "adam": _torch(torch.optim.Adam),
    "adamw": _torch(torch.optim.AdamW),
    "sgd": _torch(torch.optim.SGD),
    "soap": _soap,
}


def first_order_names() -> tuple[str, ...]:
    """The first-order optimizer names :func:`build_first_order` accepts."""
    return tuple(_BUILDERS)


def build_first_order(
    name: str,
    groups: list[dict[str, Any]],
    lr: float,
    weight_decay: float = 0.0,
    fused: bool = False,
) -> Optimizer:
    """Build the named first-order optimizer over ``groups``.

    Args:
        name: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"soap"`` (needs ``pytorch-optimizer``:
            the ``soap`` extra).
        groups: torch param groups (each a dict with ``params`` and optionally ``lr``).
        lr: the default learning rate.
        weight_decay: weight decay of every group.
        fused: torch's fused implementation (Adam, AdamW, SGD), whose step can be skipped
            on the device (``finite_check="deferred"``).

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        ImportError: ``"soap"`` without ``pytorch-optimizer`` installed.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(_BUILDERS)}")
    return _BUILDERS[name](groups, lr, weight_decay, fused)
