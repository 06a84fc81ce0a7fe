"""What a :class:`~lightning_pinn.PINNModule` adds to a Lightning checkpoint, and how it loads.

The entry under ``"lightning_pinn"`` holds the active strategy (name, options and state), the
options for later switches by name, the adapters as built (their options and the names of the
layers they sit on, so the same layers exist before the state dict loads into them) and the
module's own step counters. It holds data only: a predicate option (``target=lambda ...``) is
replaced by the names of the layers it selected, or left out and taken from the module being
resumed (build it with the same predicate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning_pinn._adapter_config import adapter_differences
from lightning_pinn._arguments import drop_callables, is_predicate
from lightning_pinn.adapters._inject import WIDE, restoring_layers
from lightning_pinn.strategies import build_strategy, strategy_names

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = ["CKPT_KEY", "load_module_state", "save_module_state"]

CKPT_KEY = "lightning_pinn"


def save_module_state(module: PINNModule, checkpoint: dict[str, Any]) -> None:
    """Write the module's strategy, adapter build and counters into ``checkpoint``."""
    strategy = module.strategy
    options = {k: v for k, v in strategy.options().items() if k != "num_losses"}
    adapters = None
    if module._adapter_config is not None:
        layers = list(module.model.adapted_layer_names)
        adapters = {**module._adapter_config, "layers": layers}
        if is_predicate(adapters["target"]):
            adapters["target"] = layers
        if is_predicate(options.get("target")):
            options["target"] = layers
    drop_callables(options)
    switch_defaults = dict(module._switch_defaults)
    checkpoint[CKPT_KEY] = {
        "strategy": strategy.name,
        "strategy_options": options,
        "strategy_state": strategy.state_dict(),
        "switch_defaults": switch_defaults,
        "callables": drop_callables(switch_defaults),
        "has_adapters": module.has_adapters,
        "adapters": adapters,
        "train_steps": module.train_steps,
        "skipped_steps": module.skipped_steps,
        "consecutive_skips": module.consecutive_skips,
    }


def load_module_state(module: PINNModule, checkpoint: dict[str, Any]) -> None:
    """Restore what :func:`save_module_state` wrote (before the state dict loads).

    Raises:
        ValueError: the checkpoint's strategy is not registered, its adapters differ from the
            module's own, or it left out a predicate option the module does not have.
    """
    state = checkpoint.get(CKPT_KEY)
    if state is None:
        return
    options = {k: v for k, v in state["strategy_options"].items() if k != "num_losses"}
    # Checkpoints before "switch_defaults" kept one options table for every strategy.
    legacy = "switch_defaults" not in state
    switch_defaults = dict(options if legacy else state["switch_defaults"])
    for key in state.get("callables", ()):
        if not is_predicate(module._switch_defaults.get(key)):
            raise ValueError(
                f"the checkpoint was saved with a predicate {key}=... (code is not stored in "
                f"checkpoints); build the module with the same {key}=... to resume"
            )
        switch_defaults[key] = module._switch_defaults[key]
    if state["has_adapters"]:
        _restore_adapters(module, state.get("adapters"), options)
    elif module.has_adapters:  # built with adapters, saved after they were folded away
        module._detach_adapters(fold=False)  # (fold_adapters): the state holds the fold
    name = state["strategy"]
    if name not in strategy_names():
        raise ValueError(
            f"the checkpoint uses strategy {name!r}, which is not registered (registered: "
            f"{', '.join(strategy_names())}); register its class with "
            "lightning_pinn.strategies.register_strategy before loading"
        )
    module._switch_defaults = switch_defaults
    module._strategy = build_strategy(name, num_losses=module.num_losses, **options)
    module._strategy.load_state_dict(state["strategy_state"])
    module.train_steps = state["train_steps"]
    module.skipped_steps = state["skipped_steps"]
    module.consecutive_skips = state.get("consecutive_skips", 0)


def _restore_adapters(
    module: PINNModule, saved: dict[str, Any] | None, options: dict[str, Any]
) -> None:
    """Attach the checkpoint's adapters, on the layers it names (before the state loads)."""
    config = dict(
        saved
        or {
            "rank": options.get("rank", 4),
            "alpha": options.get("alpha"),
            "target": options.get("target", WIDE),
            "seed": options.get("adapter_seed", 0),
            "lr_mult": options.get("adapter_lr_mult", 1.0),
        }
    )
    layers = config.pop("layers", None)
    if layers is not None:
        config["target"] = list(layers)
    try:
        with restoring_layers():  # the saved run chose these layers for this rank
            if not module.has_adapters:
                module._attach_adapters(config)
                return
            assert module._adapter_config is not None
            differences = adapter_differences(module.model, module._adapter_config, config)
    except ValueError as err:  # the layers the checkpoint names do not fit this network
        raise ValueError(
            f"the checkpoint's adapters sit on layers {layers} of the network that saved it, "
            f"which this module's network cannot take ({err}); resume with the same network "
            "(trunk and sizes) and problem as the run that saved the checkpoint"
        ) from err
    if layers is not None and list(layers) != module.model.adapted_layer_names:
        raise ValueError(
            f"the checkpoint's adapters sit on layers {list(layers)} of the network that saved "
            f"it, this module's on {module.model.adapted_layer_names}; resume with the same "
            "network (trunk and sizes), problem and adapter options (rank, target) as the run "
            "that saved the checkpoint"
        )
    if differences:
        raise ValueError(
            f"the checkpoint's adapters differ from this module's ({'; '.join(differences)}, "
            "module -> checkpoint); build the module with the checkpoint's adapter options"
        )
