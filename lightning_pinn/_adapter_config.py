"""How the module builds its adapters: the options that shape the layers, and the wrap."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from lightning_pinn.adapters import PerLossAdapter
from lightning_pinn.adapters._inject import select_layers
from lightning_pinn.adapters._layer import AdapterLinear
from lightning_pinn.strategies import Strategy

__all__ = [
    "ADAPTER_KEYS",
    "adapter_config_of",
    "adapter_differences",
    "check_adapter_config",
    "check_foldable",
    "fold_and_unwrap",
    "wrap_in_adapters",
]

ADAPTER_KEYS = ("rank", "alpha", "target", "seed")


def adapter_config_of(strategy: Strategy) -> dict[str, Any]:
    """The layer options (``rank``, ``alpha``, ``target``, ``seed``) and ``lr_mult``."""
    options = strategy.adapter_options()
    config = {key: options[key] for key in ADAPTER_KEYS}
    config["lr_mult"] = float(getattr(strategy, "adapter_lr_mult", 1.0))
    return config


def check_adapter_config(model: nn.Module, num_losses: int, config: dict[str, Any]) -> list[str]:
    """The layers :func:`wrap_in_adapters` would adapt; raises what it would raise.

    Raises:
        ValueError: ``model`` is already a :class:`PerLossAdapter`, or the options fit no
            layer (see :class:`PerLossAdapter`).
    """
    if isinstance(model, PerLossAdapter):
        raise ValueError(
            "the module's network is already a PerLossAdapter, so the adapters strategy cannot "
            "wrap it again; pass the plain trunk (model.trunk, or model.merged() to fold the "
            "adapters in) and let the strategy attach the adapters"
        )
    chosen = select_layers(model, num_losses, config["rank"], config["alpha"], config["target"])
    return [name for name, _ in chosen]


def wrap_in_adapters(model: nn.Module, num_losses: int, config: dict[str, Any]) -> PerLossAdapter:
    """``model`` wrapped in :class:`PerLossAdapter` built from ``config``, on its device."""
    device = next(model.parameters()).device
    layer_options = {key: config[key] for key in ADAPTER_KEYS}
    return PerLossAdapter(model, num_losses=num_losses, **layer_options).to(device)


def adapter_differences(
    model: PerLossAdapter, attached: dict[str, Any], config: dict[str, Any]
) -> list[str]:
    """How adapters built from ``config`` would differ from the attached ones (empty: none).

    Compares rank, alpha, seed, learning-rate multiplier and the layers ``config["target"]``
    selects on the plain trunk.
    """
    rank = config["rank"]
    out = []
    if rank != attached["rank"]:
        out.append(f"rank {attached['rank']} -> {rank}")
    old_alpha = float(attached["rank"] if attached["alpha"] is None else attached["alpha"])
    new_alpha = float(rank if config["alpha"] is None else config["alpha"])
    if new_alpha != old_alpha:
        out.append(f"alpha {old_alpha:g} -> {new_alpha:g}")
    if int(config["seed"]) != int(attached["seed"]):
        out.append(f"seed {attached['seed']} -> {config['seed']}")
    if float(config["lr_mult"]) != float(attached["lr_mult"]):
        out.append(f"adapter_lr_mult {attached['lr_mult']:g} -> {config['lr_mult']:g}")
    target = config["target"]
    if target is not attached["target"] and target != attached["target"]:
        chosen = select_layers(model.merged(), model.num_losses, rank, new_alpha, target)
        names = [name for name, _ in chosen]
        if names != model.adapted_layer_names:
            out.append(f"layers {model.adapted_layer_names} -> {names}")
    return out


def check_foldable(model: PerLossAdapter) -> None:
    """Raise unless :func:`fold_and_unwrap` can fold every adapter in place."""
    layers = [m for m in model.trunk.modules() if isinstance(m, AdapterLinear)]
    if any(parametrize.is_parametrized(m.base_layer, "weight") for m in layers):
        raise ValueError(
            "the attached adapters sit on parametrised weights (e.g. random weight "
            "factorisation), which cannot be folded in place to rebuild them with other "
            "options; switch with the attached adapter options, or build a new module with "
            "the adapter options you want"
        )


def fold_and_unwrap(model: PerLossAdapter) -> nn.Module:
    """Fold the adapters into their base layers in place and return the plain trunk.

    The function is unchanged and the trunk's parameters stay the same tensors (their
    optimizer state survives), so adapters can be rebuilt with other options.

    Raises:
        ValueError: an adapted layer's weight is parametrised (e.g. RWF): it cannot be folded
            in place.
    """
    check_foldable(model)
    layers = {id(m): m for m in model.trunk.modules() if isinstance(m, AdapterLinear)}
    with torch.no_grad():
        for layer in layers.values():
            layer.base_layer.weight.copy_(layer.merged_weight())
    trunk = model.trunk
    if isinstance(trunk, AdapterLinear):
        return trunk.base_layer
    for parent in [p for _, p in trunk.named_modules(remove_duplicate=False)]:
        for name, child in list(parent._modules.items()):  # tied layers too
            if id(child) in layers:
                setattr(parent, name, layers[id(child)].base_layer)
    return trunk
