"""The module's optimizer: its param groups, and adapters joining a running optimizer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from lightning_pinn._deferred import resolve_deferred
from lightning_pinn.optim import WarmupExponentialLR, build_first_order, first_order_names
from lightning_pinn.optim._phase_step import check_phase_fits, lbfgs_parameters

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = [
    "OPTIMIZERS",
    "add_adapter_param_group",
    "configure_optimizers",
    "remove_adapter_param_group",
    "replace_adapter_param_group",
]

OPTIMIZERS = first_order_names()


def configure_optimizers(module: PINNModule) -> Any:
    """The optimizer (θ_s, then the adapters as a second group) and its schedule.

    The schedule is ``module.schedule`` (warm-up and exponential decay) or the step decay of
    ``lr_decay_rate``; either is stepped once per training step by the module (manual
    optimization). A run resumed inside the L-BFGS phase gets the L-BFGS optimizer back as
    the second optimizer, so Lightning restores its history from the checkpoint.
    """
    check_phase_fits(module)
    groups: list[dict[str, Any]] = [{"params": module.shared_parameters(), "lr": module.lr}]
    if module.has_adapters:
        adapters = module._all_adapter_parameters()
        groups.append({"params": adapters, "lr": module._adapter_lr()})
    module._finite_deferred = resolve_deferred(module)
    optimizer = build_first_order(
        module.optimizer_name, groups, module.lr, module.weight_decay, module._finite_deferred
    )
    optimizers = [optimizer]
    if module.lbfgs is not None and module.lbfgs_run.started:
        optimizers.append(module.lbfgs.build(lbfgs_parameters(module)))
    scheduler: Any = None
    if module.schedule is not None:
        scheduler = WarmupExponentialLR(optimizer, module.schedule)
    elif module.lr_decay_rate != 1.0:
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=module.lr_decay_steps, gamma=module.lr_decay_rate
        )
    if scheduler is None:
        return optimizers if len(optimizers) > 1 else optimizer
    if len(optimizers) > 1:
        return optimizers, [{"scheduler": scheduler}]
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


def replace_adapter_param_group(module: PINNModule, old: list[Any]) -> None:
    """Put the rebuilt adapters in the running optimizer's adapter group in place of ``old``.

    The old adapters' optimizer state is dropped (they were folded into the weights); θ_s
    keeps its state. Without a running optimizer nothing happens.
    """
    index = _drop_state_of(module, old)
    if index is None:
        return
    opt = module.trainer.optimizers[0]
    lr = module._adapter_lr()
    factor = opt.param_groups[0]["lr"] / opt.param_groups[0].get("initial_lr", module.lr)
    group = opt.param_groups[index]
    group.update(params=module._all_adapter_parameters(), lr=lr * factor, initial_lr=lr)
    for config in module.trainer.lr_scheduler_configs:
        config.scheduler.base_lrs[index] = lr


def remove_adapter_param_group(module: PINNModule, old: list[Any]) -> None:
    """Take the adapters ``old`` (folded away) out of the running optimizer and its schedules;
    θ_s keeps its state. Without a running optimizer nothing happens."""
    index = _drop_state_of(module, old)
    if index is None:
        return
    del module.trainer.optimizers[0].param_groups[index]
    for config in module.trainer.lr_scheduler_configs:
        del config.scheduler.base_lrs[index]


def _drop_state_of(module: PINNModule, old: list[Any]) -> int | None:
    """Forget the running optimizer's state of ``old``; the index of their param group (None
    without a running optimizer or such a group)."""
    if module._trainer is None or not module.trainer.optimizers:
        return None
    opt = module.trainer.optimizers[0]
    gone = {id(p) for p in old}
    groups = opt.param_groups
    index = next((i for i, g in enumerate(groups) if any(id(p) in gone for p in g["params"])), None)
    for p in old:
        opt.state.pop(p, None)
    return index
