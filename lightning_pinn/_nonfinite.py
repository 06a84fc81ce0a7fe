"""Steps with a non-finite loss or gradient: they never touch the weights (``on_nonfinite``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_pinn._step import StepRecord

__all__ = [
    "handle_nonfinite",
    "nonfinite_error",
    "nonfinite_losses",
    "skip_nonfinite_step",
    "skipped_at_end_message",
    "too_many_skips_error",
]


def nonfinite_losses(loss_names: Sequence[str], values: Tensor, jac: Tensor) -> list[str]:
    """The names of the losses whose value ``[K]`` or row of ``J`` ``[K, P]`` is not finite."""
    return [
        n
        for k, n in enumerate(loss_names)
        if not (torch.isfinite(values[k]) and torch.isfinite(jac[k]).all())
    ]


def nonfinite_error(
    loss_names: Sequence[str], values: Tensor, jac: Tensor, step: int, checkpoint: str
) -> FloatingPointError:
    """The error for a step whose losses ``[K]`` or ``J`` ``[K, P]`` are not finite."""
    bad = nonfinite_losses(loss_names, values, jac)
    where = f"last good checkpoint: {checkpoint}" if checkpoint else "no checkpoint was saved yet"
    return FloatingPointError(
        f"non-finite loss or gradient for {bad} at training step {step} (1-based; "
        f"{step - 1} steps had completed) (values {values.tolist()}); the weights were not "
        f"updated; {where}. Use PINNModule(on_nonfinite='skip') to skip such steps, or lower "
        "the learning rate."
    )


def too_many_skips_error(
    loss_names: Sequence[str], values: Tensor, jac: Tensor, count: int
) -> FloatingPointError:
    """The error after ``count`` non-finite steps in a row under ``on_nonfinite="skip"``."""
    bad = nonfinite_losses(loss_names, values, jac)
    return FloatingPointError(
        f"{count} training steps in a row had a non-finite loss or gradient (latest: {bad}, "
        f"values {values.tolist()}); the run is not training, stopping. The weights are those "
        "of the last finite step. Fix the loss, lower the learning rate, or raise "
        "PINNModule(max_consecutive_skips=...)"
    )


def skipped_at_end_message(consecutive: int, total: int) -> str:
    """The warning when a run ends on skipped (non-finite) steps."""
    return (
        f"the last {consecutive} training steps were skipped (non-finite loss or gradient; "
        f"{total} skipped in all): the final weights are those of the last finite step"
    )


def handle_nonfinite(module: Any, values: Tensor, jac: Tensor) -> None:
    """The module's ``on_nonfinite`` policy for a step with non-finite losses or ``J``.

    ``"skip"`` counts the step and raises after ``max_consecutive_skips`` in a row;
    ``"raise"`` raises, naming the losses, the step and the last good checkpoint.

    Raises:
        FloatingPointError: as above.
    """
    if module.on_nonfinite == "skip":
        module.skipped_steps += 1
        module.consecutive_skips += 1
        if module.consecutive_skips >= module.max_consecutive_skips:
            raise too_many_skips_error(module.loss_names, values, jac, module.consecutive_skips)
        return
    callback = module.trainer.checkpoint_callback
    ckpt = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
    step = module.train_steps + 1  # this step (1-based, as StepRecord.step)
    raise nonfinite_error(module.loss_names, values, jac, step, ckpt)


def skip_nonfinite_step(module: Any, opt: Any, values: Tensor, jac: Tensor) -> Tensor:
    """Record, handle (:func:`handle_nonfinite`) and count a step with non-finite ``values``
    ``[K]`` or ``J`` ``[K, P]``; the weights stay untouched. Returns the summed losses."""
    module.last_record = StepRecord(
        module.train_steps + 1, values, jac, None, module.loss_weights, False
    )
    handle_nonfinite(module, values, jac)
    opt.zero_grad(set_to_none=True)
    # A step with every .grad None: torch's optimizers leave such parameters and their
    # state untouched, and Lightning counts the step toward max_steps.
    opt.step()
    module.train_steps += 1
    module._log_skip()
    return values.sum()
