"""How the module builds its adapters: the options that shape the layers, and the wrap."""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_pinn.adapters import PerLossAdapter
from lightning_pinn.strategies import Strategy

__all__ = ["ADAPTER_KEYS", "adapter_config_of", "wrap_in_adapters"]

ADAPTER_KEYS = ("rank", "alpha", "target", "seed")


def adapter_config_of(strategy: Strategy) -> dict[str, Any]:
    """The layer options (``rank``, ``alpha``, ``target``, ``seed``) and ``lr_mult``."""
    options = strategy.adapter_options()
    config = {key: options[key] for key in ADAPTER_KEYS}
    config["lr_mult"] = float(getattr(strategy, "adapter_lr_mult", 1.0))
    return config


def wrap_in_adapters(model: nn.Module, num_losses: int, config: dict[str, Any]) -> PerLossAdapter:
    """``model`` wrapped in :class:`PerLossAdapter` built from ``config``, on its device."""
    device = next(model.parameters()).device
    layer_options = {key: config[key] for key in ADAPTER_KEYS}
    return PerLossAdapter(model, num_losses=num_losses, **layer_options).to(device)
