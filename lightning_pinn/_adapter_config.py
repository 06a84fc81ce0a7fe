"""How the module builds its adapters: the options that shape the layers, and the wrap."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from lightning_pinn.adapters import PREDICTIONS, PerLossAdapter
from lightning_pinn.adapters._inject import select_layers
from lightning_pinn.adapters._layer import AdapterLinear
from lightning_pinn.networks import WeightFactorization
from lightning_pinn.strategies import Strategy

__all__ = [
    "ADAPTER_KEYS",
    "adapter_config_of",
    "adapter_differences",
    "check_adapter_config",
    "check_foldable",
    "fold_and_unwrap",
    "foldable_in_place",
    "resolve_predict_with",
    "unwrap",
    "wrap_in_adapters",
]

ADAPTER_KEYS = ("rank", "alpha", "target", "seed")
DESIGN_DEFAULTS: dict[str, Any] = {"mode": "summed", "predict_with": "residual", "form": "linear"}
"""The design options of a build (older checkpoints lack them: these defaults apply)."""


def adapter_config_of(strategy: Strategy) -> dict[str, Any]:
    """The layer options (``rank``, ``alpha``, ``target``, ``seed``), the design options
    (``mode``, ``predict_with``, ``form``) and ``lr_mult``."""
    options = strategy.adapter_options()
    config = {key: options[key] for key in ADAPTER_KEYS}
    config.update({key: options.get(key, value) for key, value in DESIGN_DEFAULTS.items()})
    config["lr_mult"] = float(getattr(strategy, "adapter_lr_mult", 1.0))
    return config


def _design(config: dict[str, Any], key: str) -> Any:
    return config.get(key, DESIGN_DEFAULTS[key])


def resolve_predict_with(predict_with: object, loss_names: tuple[str, ...]) -> str | int:
    """``predict_with`` for :class:`PerLossAdapter`: a loss name becomes its index.

    Raises:
        ValueError: neither one of ``("residual", "mean", "trunk")``, a loss name nor a loss
            index (the message lists the valid values).
    """
    if predict_with in PREDICTIONS:
        return predict_with  # type: ignore[return-value]
    if isinstance(predict_with, str) and predict_with in loss_names:
        return loss_names.index(predict_with)
    is_index = isinstance(predict_with, int) and not isinstance(predict_with, bool)
    if is_index and 0 <= predict_with < len(loss_names):  # type: ignore[operator]
        return predict_with  # type: ignore[return-value]
    raise ValueError(
        f"predict_with={predict_with!r} names no loss; valid values are {list(PREDICTIONS)}, "
        f"a loss name of {list(loss_names)} or an index in [0, {len(loss_names)})"
    )


def check_adapter_config(
    model: nn.Module, loss_names: tuple[str, ...], config: dict[str, Any]
) -> list[str]:
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
    resolve_predict_with(_design(config, "predict_with"), loss_names)
    k = len(loss_names)
    form = _design(config, "form")
    chosen = select_layers(model, k, config["rank"], config["alpha"], config["target"], form)
    return [name for name, _ in chosen]


def wrap_in_adapters(
    model: nn.Module, loss_names: tuple[str, ...], config: dict[str, Any]
) -> PerLossAdapter:
    """``model`` wrapped in :class:`PerLossAdapter` built from ``config``, on its device.

    Raises:
        ValueError: as :class:`PerLossAdapter`, or a ``predict_with`` naming no loss.
    """
    device = next(model.parameters()).device
    options = {key: config[key] for key in ADAPTER_KEYS}
    options.update({key: _design(config, key) for key in ("mode", "form")})
    options["predict_with"] = resolve_predict_with(_design(config, "predict_with"), loss_names)
    return PerLossAdapter(model, num_losses=len(loss_names), **options).to(device)


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
    for key in ("mode", "form"):  # predict_with changes in place (no rebuild)
        if _design(config, key) != _design(attached, key):
            out.append(f"{key} {_design(attached, key)} -> {_design(config, key)}")
    target = config["target"]
    if target is not attached["target"] and target != attached["target"]:
        plain = model.merged("trunk")  # the layers only (any form)
        form = _design(config, "form")
        chosen = select_layers(plain, model.num_losses, rank, new_alpha, target, form)
        names = [name for name, _ in chosen]
        if names != model.adapted_layer_names:
            out.append(f"layers {model.adapted_layer_names} -> {names}")
    return out


def check_foldable(model: PerLossAdapter) -> None:
    """Raise unless :func:`fold_and_unwrap` can fold every adapter in place."""
    layers = [m for m in model.trunk.modules() if isinstance(m, AdapterLinear)]
    if model.form != "linear":
        raise ValueError(
            "the attached adapters are nonlinear branches, which cannot be folded into the "
            "weights to rebuild them with other options; switch with the attached adapter "
            "options, or build a new module with the adapter options you want"
        )
    if not all(foldable_in_place(m.base_layer) for m in layers):
        raise ValueError(
            "the attached adapters sit on parametrised weights other than random weight "
            "factorisation, which cannot be folded in place; switch with the attached adapter "
            "options, or build a new module with the adapter options you want"
        )


def _rwf_factors(layer: nn.Module) -> tuple[Tensor, Tensor] | None:
    """``(s, V)`` of a weight under random weight factorisation alone (``W = diag(exp(s))
    V``), else None."""
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    chain = layer.parametrizations.weight
    if len(chain) != 1 or not isinstance(chain[0], WeightFactorization):
        return None
    return chain.original0, chain.original1


def foldable_in_place(layer: nn.Module) -> bool:
    """Whether an adapter on ``layer`` folds into its weight in place (plain or RWF)."""
    return not parametrize.is_parametrized(layer, "weight") or _rwf_factors(layer) is not None


def _fold_in_place(layer: AdapterLinear) -> None:
    """``W <- W + ΔW`` of the active adapters; under RWF ``V <- V + ΔW / exp(s)``, s kept."""
    base = layer.base_layer
    weight = layer.merged_weight()
    factors = _rwf_factors(base)
    if factors is None:
        base.weight.copy_(weight)
        return
    s, v = factors
    v.copy_(weight / torch.exp(s).unsqueeze(-1))


def fold_and_unwrap(model: PerLossAdapter) -> nn.Module:
    """Fold the adapters into their base layers in place and return the plain trunk.

    The function is unchanged and the trunk's parameters stay the same tensors (their
    optimizer state survives), so adapters can be rebuilt with other options.

    Raises:
        ValueError: an adapted layer's weight is parametrised (e.g. RWF): it cannot be folded
            in place.
    """
    check_foldable(model)
    with torch.no_grad():
        for layer in model.trunk.modules():
            if isinstance(layer, AdapterLinear):
                _fold_in_place(layer)
    return unwrap(model)


def unwrap(model: PerLossAdapter) -> nn.Module:
    """The plain trunk, each adapted layer replaced by its base layer; the adapters are
    dropped, not folded (any form, parametrised weights too)."""
    layers = {id(m): m for m in model.trunk.modules() if isinstance(m, AdapterLinear)}
    trunk = model.trunk
    if isinstance(trunk, AdapterLinear):
        return trunk.base_layer
    for parent in [p for _, p in trunk.named_modules(remove_duplicate=False)]:
        for name, child in list(parent._modules.items()):  # tied layers too
            if id(child) in layers:
                setattr(parent, name, layers[id(child)].base_layer)
    return trunk
