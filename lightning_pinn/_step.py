"""One training step: the checked losses going in and the :class:`StepRecord` coming out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lightning_pinn.data import check_batch
from lightning_pinn.gradients import per_loss_gradients, row_norms, unflatten_into_grad

__all__ = [
    "LatestStepViews",
    "StepRecord",
    "check_losses",
    "check_point_sets",
    "input_dtype_error",
    "step_gradients",
    "step_metrics",
    "write_adapter_grads",
]


@dataclass(frozen=True)
class StepRecord:
    """What one training step computed, published by the module for callbacks.

    All tensors stay on the training device (reading them does not synchronise).

    Attributes:
        step: 1-based index of this training step (the module's ``train_steps`` after it).
        losses: raw loss values ``[K]`` in ``loss_names`` order.
        jacobian: per-loss gradients over the shared parameters ``[K, P]`` (unscaled; fp32,
            fp64 for an fp64 model).
        update: the shared update ``d`` applied ``[P]``; ``None`` when the step was skipped.
        weights: the per-loss weights in force ``[K]`` (this step's, or the last applied
            step's when this one was skipped; ``None`` before any applied step).
        finite: whether the losses and ``J`` were finite (``False``: no update was applied);
            a 0-dim bool device tensor after a deferred step (``finite_check="deferred"``),
            so reading it is a host synchronisation.
    """

    step: int
    losses: Tensor
    jacobian: Tensor
    update: Tensor | None
    weights: Tensor | None
    finite: bool | Tensor


class LatestStepViews:
    """Read-only views of the module's latest :class:`StepRecord` (``last_record``)."""

    last_record: StepRecord | None
    loss_names: tuple[str, ...]

    @property
    def loss_jacobian(self) -> Tensor | None:
        """``J`` ``[K, P]`` of the latest training step, rows in ``loss_names`` order.

        fp32, or fp64 for an fp64 model.
        """
        return self.last_record.jacobian if self.last_record is not None else None

    @property
    def last_losses(self) -> Tensor | None:
        """The raw loss values ``[K]`` of the latest training step."""
        return self.last_record.losses if self.last_record is not None else None

    @property
    def last_update(self) -> Tensor | None:
        """The shared update ``[P]`` of the latest step (``None`` if it was skipped)."""
        return self.last_record.update if self.last_record is not None else None

    @property
    def loss_weights(self) -> Tensor | None:
        """The per-loss weights ``[K]`` in force."""
        return self.last_record.weights if self.last_record is not None else None

    @property
    def last_step_finite(self) -> bool:
        """Whether the latest step's losses and ``J`` were finite (a host read)."""
        return bool(self.last_record.finite) if self.last_record is not None else True

    def named_loss_weights(self) -> Iterator[tuple[str, float]]:
        """The latest per-loss weights as ``(name, value)`` pairs (host values)."""
        if self.loss_weights is None:
            return iter(())
        return zip(self.loss_names, self.loss_weights.tolist(), strict=True)


def check_point_sets(batch: object) -> None:
    """A dict batch of point tensors (any data module's) has no empty set; named if it has."""
    if isinstance(batch, Mapping):
        check_batch({k: v for k, v in batch.items() if isinstance(v, Tensor) and v.ndim >= 1})


def check_losses(out: object, loss_names: Sequence[str], owner: str) -> list[Tensor]:
    """The K losses of ``losses()`` as scalars in ``loss_names`` order, validated.

    Losses are cast to fp32 (fp64 losses stay fp64).

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
        if not v.is_floating_point():
            raise TypeError(
                f"loss {name!r} must be a real floating-point tensor, got dtype {v.dtype}; "
                "compute it from the network output (a complex residual r: r.abs().pow(2)"
                ".mean())"
            )
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
        v = v.reshape(())
        values.append(v if v.dtype == torch.float64 else v.float())  # fp64 models stay fp64
    return values


def step_gradients(
    values: list[Tensor],
    shared: list[Tensor],
    extra: list[list[Tensor]] | None,
    scaler: Any,
    reduce: Callable[[Tensor], Tensor] | None,
    loss_names: Sequence[str] | None = None,
) -> tuple[Tensor, list[Tensor], float, Tensor]:
    """J over θ_s and the adapter gradients ``extra`` asks for, and the loss values, all
    reduced together (one mean all-reduce under DDP).

    The loss values are reduced with J so that every rank sees the same values: a rule that
    reads them (ReLoBRaLo) then gives every rank the same weights, and a loss that is not
    finite on one rank only is skipped (or raised) on every rank alike.

    Under ``16-mixed`` each loss is multiplied by the scaler's factor S before its reverse
    pass (so fp16 gradients do not underflow) and J is divided by S again: statistics and
    strategies always see unscaled gradients.

    Args:
        values: the K scalar losses.
        shared: θ_s.
        extra: per-loss parameter lists whose gradients are also wanted (adapters), or None.
        scaler: the fp16 gradient scaler, or None.
        reduce: the mean all-reduce over ranks (one call per step), or None on one process.
        loss_names: given (at the first step), check that every loss reaches a parameter.

    Returns:
        ``(J [K, P], adapter gradients, S, loss values [K])``: the values detached, their
        mean over ranks under DDP.

    Raises:
        ValueError: with ``loss_names``, a loss with no gradient path to any parameter.
    """
    scale = 1.0
    scaled = values
    if scaler is not None:
        scaled = [scaler.scale(v) for v in values]
        scale = float(scaler.get_scale())
    reached: list[bool] | None = [] if loss_names is not None else None
    jac, own = per_loss_gradients(scaled, shared, extra, scale=scale, reached=reached)  # (K, P)
    if loss_names is not None and reached is not None and not all(reached):
        unreached = [n for n, ok in zip(loss_names, reached, strict=True) if not ok]
        raise ValueError(
            f"loss(es) {unreached} have no gradient path to any trainable parameter (their "
            "rows of J would be zero): they depend only on the input points or on tensors "
            "outside the module. Compute each loss from the network output self(x) or a "
            "trainable coefficient registered as an nn.Parameter of the module"
        )
    losses = torch.stack([v.detach() for v in values])  # (K,)
    if reduce is not None:  # one all-reduce (mean) of J, adapter gradients and loss values
        sizes = [losses.numel(), jac.numel()] + [h.numel() for h in own]
        flat = reduce(torch.cat([losses.to(jac.dtype), jac.reshape(-1), *own]))
        parts = torch.split(flat, sizes)
        losses = parts[0].to(losses.dtype)
        jac, own = parts[1].view_as(jac), list(parts[2:])
    return jac, own, scale, losses


def step_metrics(
    loss_names: Sequence[str], values: Tensor, jac: Tensor, weights: Tensor
) -> dict[str, Tensor]:
    """The logged per-step scalars: total and per-loss values, gradient norms and weights."""
    norms = row_norms(jac)  # (K,), overflow-safe: the same norms as the statistics
    metrics: dict[str, Tensor] = {"loss/total": values.sum()}
    for k, name in enumerate(loss_names):
        metrics[f"loss/{name}"] = values[k]
        metrics[f"grad_norm/{name}"] = norms[k]
        metrics[f"weight/{name}"] = weights[k]
    return metrics


def write_adapter_grads(
    strategy: Any, groups: list[list[Tensor]], own: list[Tensor], weights: Tensor
) -> None:
    """Write the strategy's adapter updates (from the gradients ``own``) into ``.grad``."""
    sizes = [sum(p.numel() for p in group) for group in groups]
    updates = strategy.adapter_updates(own, weights, sizes)
    for update, params in zip(updates, groups, strict=True):
        unflatten_into_grad(update, params)


def input_dtype_error(x: object, model: nn.Module) -> TypeError | None:
    """A clear error when floating points ``x`` match no parameter's dtype, else None.

    Called when the forward failed, so a trunk that never mixes them is never refused.
    """
    if not (isinstance(x, Tensor) and x.is_floating_point()):
        return None
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if not dtypes or x.dtype in dtypes:
        return None
    dtype = sorted(dtypes, key=str)[0]
    return TypeError(
        f"the points are {x.dtype} but the model's parameters are {dtype}; convert "
        f"one to the other: the data (x.to({dtype})) or the model "
        f"(model.to({x.dtype}), or Trainer(precision='64-true') for float64)"
    )
