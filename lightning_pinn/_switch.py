"""Adopting a strategy (bound to K) and switching strategies in place, all or nothing."""

from __future__ import annotations

import copy
import weakref
from typing import TYPE_CHECKING, Any

from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from lightning_pinn._adapter_config import (
    adapter_config_of,
    adapter_differences,
    check_adapter_config,
    check_foldable,
    resolve_predict_with,
)
from lightning_pinn._optimizers import (
    add_adapter_param_group,
    remove_adapter_param_group,
    replace_adapter_param_group,
)
from lightning_pinn.strategies import (
    Strategy,
    build_strategy,
    resolve_strategy,
    validate_strategy_options,
)

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = ["adopt", "fold_adapters", "plan_switch", "switch_strategy"]


def adopt(module: PINNModule, strategy: str | Strategy, options: dict[str, Any]) -> Strategy:
    """The strategy bound to K: built from a name (with the switch defaults) or given."""
    if isinstance(strategy, str):
        merged = copy.deepcopy({**module._switch_defaults, **options})
        return build_strategy(strategy, num_losses=module.num_losses, **merged)
    chosen = resolve_strategy(strategy, **options)
    if chosen.owned_by_other(module):  # its state (weights, counters) would be shared
        name = type(chosen).__name__
        rank_zero_warn(
            f"this {name} object already drives another module; this module gets a copy "
            f"(copy.deepcopy), so the two runs do not share its state (weights, step counts). "
            f"Build a new {name}(...) per module to start from a fresh state"
        )
        chosen = copy.deepcopy(chosen)
    return chosen.bind(module.num_losses)


def plan_switch(
    module: PINNModule, strategy: str | Strategy, options: dict[str, Any]
) -> tuple[Strategy, dict[str, Any] | None]:
    """The new strategy and the adapters to (re)build (None: none), checked; changes nothing.

    Adapters with other options than the attached ones are rebuilt: the attached ones are
    folded into the weights (the function is unchanged) and new ones, zero at insertion, take
    their place and their optimizer param group.

    Raises:
        ValueError: unknown strategy or option, adapters that fit no layer of the network,
            or attached adapters that cannot be folded in place (parametrised weights).
    """
    if isinstance(strategy, str):
        validate_strategy_options(options)
    new = adopt(module, strategy, options)
    if not new.uses_adapters:
        return new, None
    config = adapter_config_of(new)
    phase = getattr(module, "lbfgs", None)
    if phase is not None and phase.fold_adapters and config.get("form", "linear") != "linear":
        raise ValueError(
            f"adapters of form={config['form']!r} are nonlinear branches, which the module's "
            "LBFGSPhase(fold_adapters=True) cannot fold into the weights at its switch; use "
            "form='linear' or fold_adapters=False"
        )
    if not module.has_adapters:
        check_adapter_config(module.model, module.loss_names, config)
        return new, config
    assert module._adapter_config is not None
    if not adapter_differences(module.model, module._adapter_config, config):
        resolve_predict_with(config["predict_with"], module.loss_names)  # set in place
        return new, None
    check_foldable(module.model)
    check_adapter_config(module.model.merged(), module.loss_names, config)
    return new, config


def switch_strategy(module: PINNModule, strategy: str | Strategy, options: dict[str, Any]) -> None:
    """What :meth:`~lightning_pinn.PINNModule.set_strategy` does: check all, then apply."""
    new, config = plan_switch(module, strategy, options)
    if config is not None and module.has_adapters:  # rebuild: fold, unwrap, attach anew
        old = module._all_adapter_parameters()
        module._detach_adapters(fold=True)
        module._attach_adapters(config)
        replace_adapter_param_group(module, old)
    elif config is not None:
        module._attach_adapters(config)
        add_adapter_param_group(module)
    elif new.uses_adapters and module.has_adapters:  # the same adapters: predict_with in place
        predict_with = adapter_config_of(new)["predict_with"]
        module.model.set_predict_with(resolve_predict_with(predict_with, module.loss_names))
        module._adapter_config = {**(module._adapter_config or {}), "predict_with": predict_with}
    if isinstance(strategy, str):
        module._switch_defaults.update(options)
    module._strategy = new
    new._owner = weakref.ref(module)


def fold_adapters(module: PINNModule) -> None:
    """Fold the prediction's adapters into the trunk's weights and drop every adapter.

    The prediction (``predict_with``) is unchanged; from here on every loss is evaluated on
    that one function. The adapters' param group leaves the running optimizer and the
    schedules (θ_s keeps its state). The strategy keeps its weights; with no adapters
    attached it routes nothing to them.
    """
    if not module.has_adapters:
        return
    old = module._all_adapter_parameters()
    module._detach_adapters(fold=True)
    remove_adapter_param_group(module, old)
