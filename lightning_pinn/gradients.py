"""Per-loss gradients: the Jacobian ``J`` of K losses over a flat parameter vector.

One forward, K reverse passes (``torch.autograd.grad``, so DDP's reducer is never involved),
rows flattened and stacked into a ``[K, P]`` matrix (fp32; fp64 for fp64 models) that stays
on the device (see docs/concepts.md). :func:`row_norms` is the one place the per-loss
gradient norms ``‖g_k‖`` are computed: the logged ``grad_norm/*``, the reweighting rules and
the conflict statistics all call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "flatten",
    "jacobian_dtype",
    "per_loss_gradients",
    "row_norms",
    "unflatten_into_grad",
]

_SCALE_FLOOR = 1e-30


def jacobian_dtype(params: Sequence[Tensor]) -> torch.dtype:
    """The dtype of ``J``: float64 when a parameter is float64, else float32."""
    return torch.float64 if any(p.dtype == torch.float64 for p in params) else torch.float32


def flatten(
    tensors: Sequence[Tensor | None],
    like: Sequence[Tensor],
    out: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Concatenate gradients into one vector; ``None`` (unused parameter) becomes zeros.

    Args:
        tensors: gradients, one per parameter (``None`` where the loss does not reach it).
        like: the parameters, used for shapes of missing gradients.
        out: optional ``[P]`` destination (e.g. a row of a preallocated ``J``).
        dtype: the vector's dtype without ``out`` (fp32 by default).

    Returns:
        A ``[P]`` vector (``out`` when given).
    """
    dtype = out.dtype if out is not None else dtype
    parts = [
        (g if g is not None else torch.zeros_like(p)).reshape(-1).to(dtype)
        for g, p in zip(tensors, like, strict=True)
    ]
    if not parts:
        return out if out is not None else torch.zeros(0, dtype=dtype)
    return torch.cat(parts, out=out) if out is not None else torch.cat(parts)


def per_loss_gradients(
    losses: Sequence[Tensor],
    shared: Sequence[Tensor],
    extra: Sequence[Sequence[Tensor]] | None = None,
    scale: float = 1.0,
    reached: list[bool] | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Gradient of each loss over the shared parameters, and over its own extra parameters.

    One reverse pass per loss over a graph built by a single forward (the graph is retained
    between passes). Gradients are returned unscaled (divided by ``scale``) in fp32, or in
    fp64 when a parameter is fp64 (:func:`jacobian_dtype`).

    Args:
        losses: K scalar losses.
        shared: the shared parameters θ_s (P elements in all).
        extra: optional, for each loss k, the parameters whose gradient of L_k is wanted too
            (adapter k under ``routing="own"``, or all adapters under ``routing="shared"``).
        scale: a loss scale already applied to ``losses`` (fp16 gradient scaler); the returned
            gradients are divided by it.
        reached: optional empty list, filled with K flags: whether loss k reaches any of the
            parameters (``False``: every gradient was ``None``, no path from L_k to them).

    Returns:
        ``J`` of shape ``[K, P]`` and, for each k, the flat gradient of L_k over
        ``extra[k]`` (an empty list when ``extra`` is None).
    """
    k_total = len(losses)
    n_shared = len(shared)
    total = sum(p.numel() for p in shared)
    device = shared[0].device if shared else torch.device("cpu")
    dtype = jacobian_dtype([*shared, *(p for group in extra or () for p in group)])
    jac = torch.empty(k_total, total, dtype=dtype, device=device)  # (K, P)
    extra_rows: list[Tensor] = []
    for k, loss in enumerate(losses):
        own = list(extra[k]) if extra is not None else []
        inputs = [*shared, *own]
        grads = torch.autograd.grad(loss, inputs, retain_graph=k < k_total - 1, allow_unused=True)
        flatten(grads[:n_shared], shared, out=jac[k])  # written in place: no copy of J
        if extra is not None:
            extra_rows.append(flatten(grads[n_shared:], own, dtype=dtype))
        if reached is not None:
            reached.append(any(g is not None for g in grads))
    if scale != 1.0:
        jac = jac / scale
        extra_rows = [h / scale for h in extra_rows]
    return jac, extra_rows


def unflatten_into_grad(vector: Tensor, params: Sequence[Tensor]) -> None:
    """Write a flat ``[P]`` vector into the ``.grad`` of ``params`` (views, no copy)."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = vector[offset : offset + n].view_as(p).to(p.dtype)
        offset += n
    if offset != vector.numel():
        raise ValueError(
            f"update has {vector.numel()} elements but the parameters hold {offset}; "
            "the parameter set changed without rebuilding the strategy"
        )


def row_norms(jac: Tensor) -> Tensor:
    """Euclidean norm of each row of ``jac``, safe from fp32 overflow.

    Each row is divided by its largest absolute entry before squaring and the norm is scaled
    back, so rows of size 1e30 (whose squares overflow fp32) keep finite, exact norms.

    Args:
        jac: per-loss gradients ``[K, P]``.

    Returns:
        ``[K]`` norms (0 for a zero row), on ``jac``'s device, no host synchronisation.

    Example:
        >>> row_norms(torch.tensor([[3e30, 4e30], [0.0, 0.0]]))
        tensor([5.0000e+30, 0.0000e+00])
    """
    rows = jac.detach()
    scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(_SCALE_FLOOR)  # (K, 1)
    return (rows / scale).norm(dim=1) * scale.squeeze(1)  # (K,)
