"""One training step: the checked losses going in and the :class:`StepRecord` coming out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import Tensor

__all__ = ["StepRecord", "check_losses"]


@dataclass(frozen=True)
class StepRecord:
    """What one training step computed, published by the module for callbacks.

    All tensors stay on the training device (reading them does not synchronise).

    Attributes:
        step: 1-based index of this training step (the module's ``train_steps`` after it).
        losses: raw loss values ``[K]`` in ``loss_names`` order.
        jacobian: per-loss gradients over the shared parameters ``[K, P]`` (fp32, unscaled).
        update: the shared update ``d`` applied ``[P]``; ``None`` when the step was skipped.
        weights: the per-loss weights in force ``[K]`` (this step's, or the last applied
            step's when this one was skipped; ``None`` before any applied step).
        finite: whether the losses and ``J`` were finite (``False``: no update was applied).
    """

    step: int
    losses: Tensor
    jacobian: Tensor
    update: Tensor | None
    weights: Tensor | None
    finite: bool


def check_losses(out: object, loss_names: Sequence[str], owner: str) -> list[Tensor]:
    """The K losses of ``losses()`` as fp32 scalars in ``loss_names`` order, validated.

    Args:
        out: what ``losses(batch)`` returned.
        loss_names: the K expected names.
        owner: the class name, for messages.

    Raises:
        TypeError: not a dict, or a value that is not a tensor.
        ValueError: wrong keys, a non-scalar loss, or a loss that depends on no parameter.
    """
    if not isinstance(out, Mapping):
        raise TypeError(
            f"{owner}.losses() must return a dict of named scalar tensors "
            f"with keys {list(loss_names)}, got {type(out).__name__}"
        )
    if set(out) != set(loss_names):
        missing = [n for n in loss_names if n not in out]
        extra = [n for n in out if n not in loss_names]
        raise ValueError(
            f"losses() returned keys {list(out)} but loss_names is {list(loss_names)}"
            f" (missing: {missing}, unexpected: {extra}); return exactly the names given "
            "in loss_names, or change loss_names"
        )
    values = []
    for name in loss_names:
        v = out[name]
        if not isinstance(v, Tensor):
            raise TypeError(f"loss {name!r} must be a scalar torch.Tensor, got {type(v).__name__}")
        if v.numel() != 1:
            raise ValueError(
                f"loss {name!r} must be a scalar, got shape {tuple(v.shape)}; reduce it "
                "(e.g. .pow(2).mean())"
            )
        if not v.requires_grad:
            raise ValueError(
                f"loss {name!r} does not depend on any trainable parameter (no grad_fn); "
                "compute it from the network output self(x) or a trainable coefficient"
            )
        values.append(v.reshape(()).float())
    return values
