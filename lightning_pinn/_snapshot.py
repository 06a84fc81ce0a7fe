"""A training state the guarded switch returns to: weights with the adapter structure, the
optimizer and schedule, the strategy and its state, the module's counters and the data index.

Held as plain data with tensors on CPU, so a snapshot goes into a checkpoint (the callback's
``state_dict``) and loads with ``weights_only``. Restoring puts the network back into the
snapshot's structure first: adapters attached after the snapshot are unwrapped, adapters the
snapshot had are attached again on the same layers (as a resumed checkpoint does), then the
values load. The trunk's parameters keep their identity throughout (the optimizer and DDP hold
them); adapter parameters are new tensors, put back into the optimizer's adapter group.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

from lightning_pinn._checkpoint import CKPT_KEY, load_module_state, save_module_state

if TYPE_CHECKING:
    import lightning as L

    from lightning_pinn.module import PINNModule

__all__ = ["restore_snapshot", "take_snapshot", "to_cpu"]


def to_cpu(obj: Any) -> Any:
    """A deep copy with every tensor detached, cloned and on CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple (e.g. a batch)
        return type(obj)(*(to_cpu(v) for v in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def take_snapshot(module: PINNModule, trainer: L.Trainer, consumed: int) -> dict[str, Any]:
    """The state to come back to (see the module docstring)."""
    extra: dict[str, Any] = {}
    save_module_state(module, extra)
    opt = trainer.optimizers[0]
    return {
        "module": to_cpu(extra[CKPT_KEY]),
        "weights": to_cpu(module.state_dict()),
        "optimizer": to_cpu(opt.state_dict()),
        "schedulers": [to_cpu(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs],
        "consumed": int(consumed),
    }


def restore_snapshot(module: PINNModule, trainer: L.Trainer, snapshot: dict[str, Any]) -> int:
    """Put the module, optimizer and schedules back to ``snapshot``; return its data index."""
    state = snapshot["module"]
    if module.has_adapters:  # unwrap; load_module_state attaches the snapshot's adapters
        module._detach_adapters(fold=False)  # the snapshot's weights load below
    load_module_state(module, {CKPT_KEY: copy.deepcopy(state)})
    module.refresh_parameters()
    module.load_state_dict(snapshot["weights"])
    opt = trainer.optimizers[0]
    groups = [module.shared_parameters()]
    if module.has_adapters:
        groups.append(module._all_adapter_parameters())
    saved_groups = snapshot["optimizer"]["param_groups"]
    if len(saved_groups) != len(groups):
        raise RuntimeError(
            f"snapshot optimizer has {len(saved_groups)} param groups, the restored module "
            f"{len(groups)}"
        )
    del opt.param_groups[len(groups) :]
    while len(opt.param_groups) < len(groups):
        opt.param_groups.append({"params": []})
    for group, params in zip(opt.param_groups, groups, strict=True):
        group["params"] = list(params)
    opt.state.clear()
    opt.load_state_dict(copy.deepcopy(snapshot["optimizer"]))
    for config, saved in zip(trainer.lr_scheduler_configs, snapshot["schedulers"], strict=True):
        config.scheduler.load_state_dict(copy.deepcopy(saved))
    return int(snapshot["consumed"])
