"""What a :class:`~lightning_pinn.PINNModule` adds to a Lightning checkpoint, and how it loads.

The entry under ``"lightning_pinn"`` holds the active strategy (name, options and state), the
options for later switches by name, how the adapters were built (so the layers exist before
the state dict loads into them) and the module's own step counters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning_pinn.strategies import build_strategy, strategy_names

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = ["CKPT_KEY", "load_module_state", "save_module_state"]

CKPT_KEY = "lightning_pinn"


def save_module_state(module: PINNModule, checkpoint: dict[str, Any]) -> None:
    """Write the module's strategy, adapter build and counters into ``checkpoint``."""
    strategy = module.strategy
    options = {k: v for k, v in strategy.options().items() if k != "num_losses"}
    config = module._adapter_config
    checkpoint[CKPT_KEY] = {
        "strategy": strategy.name,
        "strategy_options": options,
        "strategy_state": strategy.state_dict(),
        "switch_defaults": dict(module._switch_defaults),
        "has_adapters": module.has_adapters,
        "adapters": dict(config) if config else None,
        "train_steps": module.train_steps,
        "skipped_steps": module.skipped_steps,
    }


def load_module_state(module: PINNModule, checkpoint: dict[str, Any]) -> None:
    """Restore what :func:`save_module_state` wrote (before the state dict loads).

    Raises:
        ValueError: the checkpoint's strategy is not registered.
    """
    state = checkpoint.get(CKPT_KEY)
    if state is None:
        return
    options = {k: v for k, v in state["strategy_options"].items() if k != "num_losses"}
    # Checkpoints before "switch_defaults" kept one options table for every strategy.
    legacy = "switch_defaults" not in state
    module._switch_defaults = dict(options if legacy else state["switch_defaults"])
    if state["has_adapters"] and not module.has_adapters:
        config = state.get("adapters") or {
            "rank": options.get("rank", 4),
            "alpha": options.get("alpha"),
            "target": options.get("target"),
            "seed": options.get("adapter_seed", 0),
            "lr_mult": options.get("adapter_lr_mult", 1.0),
        }
        module._attach_adapters(config)  # before the state dict loads into it
    name = state["strategy"]
    if name not in strategy_names():
        raise ValueError(
            f"the checkpoint uses strategy {name!r}, which is not registered (registered: "
            f"{', '.join(strategy_names())}); register its class with "
            "lightning_pinn.strategies.register_strategy before loading"
        )
    module._strategy = build_strategy(name, num_losses=module.num_losses, **options)
    module._strategy.load_state_dict(state["strategy_state"])
    module.train_steps = state["train_steps"]
    module.skipped_steps = state["skipped_steps"]
