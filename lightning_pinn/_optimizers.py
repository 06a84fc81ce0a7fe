"""The module's optimizer: its param groups, and adapters joining a running optimizer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = ["OPTIMIZERS", "add_adapter_param_group", "configure_optimizers"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def configure_optimizers(module: PINNModule) -> Any:
    """The optimizer (θ_s, then the adapters as a second group) and the step-decay schedule."""
    groups: list[dict[str, Any]] = [{"params": module.shared_parameters(), "lr": module.lr}]
    if module.has_adapters:
        adapters = module._all_adapter_parameters()
        groups.append({"params": adapters, "lr": module._adapter_lr()})
    kwargs: dict[str, Any] = {"weight_decay": module.weight_decay}
    optimizer = OPTIMIZERS[module.optimizer_name](groups, lr=module.lr, **kwargs)
    if module.lr_decay_rate == 1.0:
        return optimizer
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=module.lr_decay_steps, gamma=module.lr_decay_rate
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}


def add_adapter_param_group(module: PINNModule) -> None:
    """Add the adapters to the running optimizer as a new group; θ_s keeps its state.

    The new group's learning rate follows the schedule's current factor. Without a running
    optimizer (before ``fit``) nothing happens: :func:`configure_optimizers` includes them.
    """
    if module._trainer is None or not module.trainer.optimizers:  # the module's own reference
        return
    opt = module.trainer.optimizers[0]
    params = module._all_adapter_parameters()
    lr = module._adapter_lr()
    factor = opt.param_groups[0]["lr"] / opt.param_groups[0].get("initial_lr", module.lr)
    opt.add_param_group({"params": params, "lr": lr * factor, "initial_lr": lr})
    for config in module.trainer.lr_scheduler_configs:
        config.scheduler.base_lrs.append(lr)
