"""Adopting a strategy (bound to K) and switching strategies in place."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from lightning_pinn._adapter_config import adapter_config_of
from lightning_pinn._optimizers import add_adapter_param_group
from lightning_pinn.strategies import (
    Strategy,
    build_strategy,
    resolve_strategy,
    validate_strategy_options,
)

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = ["adopt", "switch_strategy"]


def adopt(module: PINNModule, strategy: str | Strategy, options: dict[str, Any]) -> Strategy:
    """The strategy bound to K: built from a name (with the switch defaults) or given."""
    if isinstance(strategy, str):
        merged = copy.deepcopy({**module._switch_defaults, **options})
        return build_strategy(strategy, num_losses=module.num_losses, **merged)
    return resolve_strategy(strategy, **options).bind(module.num_losses)


def switch_strategy(module: PINNModule, strategy: str | Strategy, options: dict[str, Any]) -> None:
    """What :meth:`~lightning_pinn.PINNModule.set_strategy` does."""
    if isinstance(strategy, str):
        validate_strategy_options(options)
    new = adopt(module, strategy, options)
    if isinstance(strategy, str):
        module._switch_defaults.update(options)
    if new.uses_adapters and not module.has_adapters:
        module._attach_adapters(adapter_config_of(new))
        add_adapter_param_group(module)
    module._strategy = new
