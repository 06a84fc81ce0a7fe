"""One first-order training step of :class:`~lightning_pinn.PINNModule`: the losses, K reverse
passes into ``J``, the strategy's update, the optimizer step (docs/concepts.md)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lightning_pinn._deferred import (
    counters_for,
    deferred_step_due,
    set_found_inf,
    settle_deferred,
)
from lightning_pinn._nonfinite import skip_nonfinite_step
from lightning_pinn._per_loss import adapter_inputs, evaluate_losses, strategy_update
from lightning_pinn._step import (
    StepRecord,
    check_losses,
    check_point_sets,
    step_gradients,
    write_adapter_grads,
)
from lightning_pinn.gradients import unflatten_into_grad

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = ["first_order_step"]


def first_order_step(module: PINNModule, batch: Any) -> Tensor:
    """Train ``module`` one step on ``batch``; publish the step's :class:`StepRecord`.

    A step whose losses or ``J`` are not finite leaves the weights and the optimizer state
    untouched (``on_nonfinite``): checked on the host, or on the device for a deferred step
    (``finite_check``, :mod:`lightning_pinn._deferred`). Returns the summed loss (detached).
    """
    deferred = deferred_step_due(module)
    if not deferred:
        settle_deferred(module)  # a check step: apply the policy to the deferred steps
    opt = module.optimizers()
    shared = module.shared_parameters()
    scaler = module._grad_scaler()
    # fp32_losses: the losses and their reverse passes (the double-backward of PDE
    # derivatives included) run with autocast off, so J is computed in full fp32.
    no_autocast = torch.autocast(device_type=module.device.type, enabled=False)
    if not module._paths_checked:
        check_point_sets(batch)
    with no_autocast if module.fp32_losses else contextlib.nullcontext():
        out = evaluate_losses(module, batch)  # per-loss adapters: loss k via adapter k
        loss_list = check_losses(out, module.loss_names, type(module).__name__)
        extra = adapter_inputs(module)  # the adapter gradients the strategy routes
        reduce = None
        if module.trainer.world_size > 1:
            reduce = lambda t: module.trainer.strategy.reduce(t, reduce_op="mean")  # noqa: E731
        check = None if module._paths_checked else module.loss_names
        jac, own, scale, values = step_gradients(loss_list, shared, extra, scaler, reduce, check)
        module._paths_checked = True
    bad: Tensor | None = None
    if deferred:  # no host read: the fused optimizer discards a non-finite update itself
        bad = ~(torch.isfinite(values).all() & torch.isfinite(jac).all())  # 0-dim, on device
        counters_for(module, values.device).add(bad, module.train_steps + 1)
    else:
        # One host sync per step: a step with a non-finite loss or gradient must not touch
        # the weights. Under 16-mixed the scaler does this check itself (and lowers its scale).
        ok = scaler is not None or bool(torch.isfinite(values).all() & torch.isfinite(jac).all())
        if not ok:
            return skip_nonfinite_step(module, opt, values, jac)
        module.consecutive_skips = 0
    blocks = module.parameter_blocks()
    update, weights = strategy_update(module._strategy, jac, values, blocks, own)  # (P,), (K,)
    finite = True if bad is None else ~bad
    module.last_record = StepRecord(module.train_steps + 1, values, jac, update, weights, finite)
    # Under 16-mixed the scaler's unscale_ (inside opt.step) divides by S and skips the
    # step when the update is not finite, so write S-scaled gradients (S = 1 otherwise).
    unflatten_into_grad(update * scale if scale != 1.0 else update, shared)
    if own:
        own = [h * scale for h in own] if scale != 1.0 else own
        write_adapter_grads(module._strategy, module._adapter_groups(), own, weights)
    if bad is None:
        opt.step()
    else:  # deferred: the fused step is skipped on the device when not finite
        set_found_inf(opt, bad)
        try:
            opt.step()
        finally:
            set_found_inf(opt, None)
    opt.zero_grad(set_to_none=True)
    sched = module.lr_schedulers()
    if sched is not None:
        sched.step()
    module.train_steps += 1
    if module._should_log():  # never on a deferred step (deferred_step_due)
        module._log_step(values, jac, weights)
    return values.sum()
