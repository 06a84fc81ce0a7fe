"""Preallocated device buffers of per-step statistics, and their window aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lightning_pinn.diagnostics._statistics import (
    DEFAULT_FLOOR,
    alignment_from_cosines,
    gram_statistics,
    imbalance,
    upper_pairs,
)

__all__ = ["ProbeRecorder", "StepStatistics", "WindowStatistics", "aggregate_window"]


@dataclass(frozen=True)
class StepStatistics:
    """One step's statistics (device tensors).

    Attributes:
        cosines: pairwise cosines ``[npairs]`` (upper triangle, row-major).
        norms: per-loss gradient norms ``[K]``.
        update_cosines: ``a_k = cos(g_k, d)`` ``[K]``.
        finite: 0-d bool tensor, whether every statistic is finite.
        floor: norm floor of :attr:`imbalance`.
    """

    cosines: Tensor
    norms: Tensor
    update_cosines: Tensor
    finite: Tensor
    floor: float = DEFAULT_FLOOR

    @property
    def imbalance(self) -> Tensor:
        """``log10(max n / min n)``, a 0-d tensor (computed on access, for logging)."""
        return imbalance(self.norms, self.floor)

    @property
    def alignment(self) -> Tensor:
        """Gradient alignment score ``A`` of this step, 0-d (from the recorded cosines)."""
        return alignment_from_cosines(self.cosines, self.norms)


class ProbeRecorder:
    """Per-step statistics of a window of ``capacity`` steps in preallocated device buffers.

    Recording a step is a handful of device operations and never synchronises with the host.
    Rows that were never recorded, and steps recorded as non-finite, have ``finite = False``
    and are excluded by :func:`aggregate_window`. With ``ring=True`` the buffer keeps the last
    ``capacity`` steps (a trailing window).

    Args:
        capacity: number of steps T the buffers hold.
        num_losses: K (>= 2).
        device: where the buffers live (move later with :meth:`to`).
        ring: overwrite the oldest row when full instead of raising.
        floor: norm floor of the imbalance.

    Example:
        >>> rec = ProbeRecorder(100, 3)
        >>> stats = rec.record(torch.randn(3, 10), torch.randn(10))
        >>> rec.buffers()["cosines"].shape  # the rows recorded so far
        torch.Size([1, 3])
    """

    def __init__(
        self,
        capacity: int,
        num_losses: int,
        *,
        device: torch.device | str | None = None,
        ring: bool = False,
        floor: float = DEFAULT_FLOOR,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        if num_losses < 2:
            raise ValueError(f"conflict statistics need K >= 2 losses, got {num_losses!r}")
        self.capacity = int(capacity)
        self.num_losses = int(num_losses)
        self.ring = ring
        self.floor = floor
        self.count = 0  # steps recorded so far (the next row, modulo capacity for a ring)
        npairs = num_losses * (num_losses - 1) // 2
        kw: dict[str, Any] = {"device": device, "dtype": torch.float32}
        self.cosines = torch.zeros(capacity, npairs, **kw)  # (T, npairs)
        self.norms = torch.zeros(capacity, num_losses, **kw)  # (T, K)
        self.update_cosines = torch.zeros(capacity, num_losses, **kw)  # (T, K)
        self.finite = torch.zeros(capacity, dtype=torch.bool, device=device)  # (T,)

    @property
    def device(self) -> torch.device:
        return self.cosines.device

    def to(self, device: torch.device | str) -> ProbeRecorder:
        """Move the buffers (in place) and return ``self``."""
        for name in ("cosines", "norms", "update_cosines", "finite"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def record(
        self,
        jac: Tensor,
        update: Tensor | None = None,
        *,
        finite: bool | Tensor = True,
        index: int | None = None,
    ) -> StepStatistics:
        """Compute and store one step's statistics.

        Args:
            jac: per-loss gradients ``[K, P]``.
            update: the applied shared update ``[P]`` (``None``: update cosines 0).
            finite: ``False`` marks the step as skipped (nothing is computed).
            index: row to write (e.g. ``step - 1``); default the next row.

        Returns:
            The step's :class:`StepStatistics` (device tensors).
        """
        if jac.shape[0] != self.num_losses:
            raise ValueError(
                f"jac has {jac.shape[0]} rows but the recorder has K={self.num_losses}"
            )
        row = self.count if index is None else index
        if not self.ring and not 0 <= row < self.capacity:
            raise IndexError(f"row {row} is outside the window of {self.capacity} steps")
        row %= self.capacity
        self.count = max(self.count, (index if index is not None else self.count) + 1)
        if isinstance(finite, bool) and not finite:
            nan = torch.full((self.num_losses,), float("nan"), device=self.device)
            self.cosines[row] = float("nan")
            self.norms[row] = nan
            self.update_cosines[row] = nan
            self.finite[row] = False
            return StepStatistics(self.cosines[row], nan, nan, self.finite[row], self.floor)
        cos, norms, ucos = gram_statistics(jac, update)  # (K, K), (K,), (K,)
        pairs = upper_pairs(cos)  # (npairs,)
        ok = torch.isfinite(norms.sum() + pairs.sum() + ucos.sum())  # (); NaN/inf propagate
        if isinstance(finite, Tensor):  # a deferred step's device flag
            ok = ok & finite
        self.cosines[row] = pairs
        self.norms[row] = norms
        self.update_cosines[row] = ucos
        self.finite[row] = ok
        return StepStatistics(pairs, norms, ucos, ok, self.floor)

    def buffers(self) -> dict[str, Tensor]:
        """The rows recorded so far (all rows for a full ring, oldest first)."""
        if self.ring and self.count > self.capacity:
            order = torch.arange(self.count, self.count + self.capacity) % self.capacity
            order = order.to(self.device)
            return {n: getattr(self, n)[order] for n in _BUFFERS}
        n = min(self.count, self.capacity)
        return {name: getattr(self, name)[:n] for name in _BUFFERS}

    def conflict_rate(self) -> Tensor:
        """Share of recorded finite steps in which each pair conflicted, ``[npairs]`` (device)."""
        n = min(self.count, self.capacity)
        finite = self.finite[:n]  # (n,)
        hits = ((self.cosines[:n] < 0) & finite[:, None]).sum(0)  # (npairs,)
        return hits.float() / finite.sum().clamp_min(1).float()

    def state_dict(self) -> dict[str, Any]:
        """Buffers (on CPU) and counters, for checkpoints."""
        state: dict[str, Any] = {n: getattr(self, n).detach().cpu().clone() for n in _BUFFERS}
        state.update(
            capacity=self.capacity,
            num_losses=self.num_losses,
            ring=self.ring,
            count=self.count,
            floor=self.floor,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore buffers and counters (buffers keep this recorder's device)."""
        if (state["capacity"], state["num_losses"]) != (self.capacity, self.num_losses):
            raise ValueError(
                f"recorder state has capacity {state['capacity']} and K={state['num_losses']}, "
                f"this recorder {self.capacity} and K={self.num_losses}"
            )
        for name in _BUFFERS:
            getattr(self, name).copy_(state[name])
        self.count = int(state["count"])
        self.ring = bool(state["ring"])
        self.floor = float(state["floor"])

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], device: torch.device | str | None = None
    ) -> ProbeRecorder:
        """A recorder rebuilt from :meth:`state_dict`."""
        rec = cls(
            state["capacity"],
            state["num_losses"],
            device=device,
            ring=bool(state["ring"]),
            floor=float(state["floor"]),
        )
        rec.load_state_dict(state)
        return rec


_BUFFERS = ("cosines", "norms", "update_cosines", "finite")


@dataclass(frozen=True)
class WindowStatistics:
    """Aggregates over a window of T steps (docs/concepts.md); non-finite steps excluded.

    The late half is the last ``ceil(T/2)`` rows (steps ``floor(T/2)+1 .. T``).

    Attributes:
        conflict_rate: ``f_ij`` ``[npairs]``.
        late_conflict_rate: ``f_ij`` over the late half ``[npairs]``.
        mean_cosine: ``[npairs]``.
        late_mean_cosine: ``[npairs]``.
        median_norm: per-loss median gradient norm ``[K]``.
        median_imbalance: median of ``I(t)``, 0-d.
        update_conflict_share: share of steps where some ``a_k < 0``, 0-d.
        loss_update_conflict_share: per-loss share of steps with ``a_k < 0`` ``[K]``.
        mean_update_cosine: per-loss mean ``a_k`` ``[K]``.
        mean_alignment: mean gradient alignment score ``A``, 0-d.
        late_mean_alignment: mean ``A`` over the late half, 0-d.
        steps: T, the window length.
        finite_steps: steps that entered the statistics.
        late_finite_steps: finite steps in the late half.
    """

    conflict_rate: Tensor
    late_conflict_rate: Tensor
    mean_cosine: Tensor
    late_mean_cosine: Tensor
    median_norm: Tensor
    median_imbalance: Tensor
    update_conflict_share: Tensor
    loss_update_conflict_share: Tensor
    mean_update_cosine: Tensor
    steps: int
    finite_steps: int
    late_finite_steps: int
    mean_alignment: Tensor | None = None
    late_mean_alignment: Tensor | None = None


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over rows where ``mask`` (``[T, C]`` values, ``[T]`` mask); 0 for no rows."""
    kept = torch.where(mask[:, None], values, torch.zeros_like(values))
    return kept.sum(0) / mask.sum().clamp_min(1).to(values.dtype)


def _median(values: Tensor) -> Tensor:
    """Median along dim 0 (interpolated for even counts); 0 for no rows."""
    if values.shape[0] == 0:
        return torch.zeros(values.shape[1:], device=values.device)
    return torch.quantile(values, 0.5, dim=0)


def aggregate_window(
    cosines: Tensor,
    norms: Tensor,
    update_cosines: Tensor,
    finite: Tensor,
    *,
    floor: float = DEFAULT_FLOOR,
) -> WindowStatistics:
    """Aggregate per-step statistics over a window (the probe: steps 1..T).

    Args:
        cosines: pairwise cosines ``[T, npairs]``.
        norms: per-loss norms ``[T, K]``.
        update_cosines: ``a_k`` ``[T, K]``.
        finite: ``[T]`` bool; ``False`` rows (skipped or never recorded) are excluded.
        floor: norm floor of the imbalance.

    Returns:
        :class:`WindowStatistics`. Rates and means are 0 and medians 0 when no step is finite.
    """
    t = cosines.shape[0]
    finite = finite.bool()
    late = torch.zeros_like(finite)
    late[t // 2 :] = True
    late &= finite
    conflicts = (cosines < 0).float()  # (T, npairs)
    ucos = update_cosines.float()
    kept_norms = norms[finite]  # (n, K)
    imbs = imbalance(kept_norms, floor) if kept_norms.shape[0] else kept_norms.new_zeros(0)
    align = alignment_from_cosines(cosines.float(), norms)[:, None]  # (T, 1)
    return WindowStatistics(
        conflict_rate=_masked_mean(conflicts, finite),
        late_conflict_rate=_masked_mean(conflicts, late),
        mean_cosine=_masked_mean(cosines, finite),
        late_mean_cosine=_masked_mean(cosines, late),
        median_norm=_median(kept_norms),
        median_imbalance=_median(imbs),
        update_conflict_share=_masked_mean((ucos < 0).any(dim=1, keepdim=True).float(), finite)[0],
        loss_update_conflict_share=_masked_mean((ucos < 0).float(), finite),
        mean_update_cosine=_masked_mean(ucos, finite),
        steps=t,
        finite_steps=int(finite.sum()),
        late_finite_steps=int(late.sum()),
        mean_alignment=_masked_mean(align, finite)[0],
        late_mean_alignment=_masked_mean(align, late)[0],
    )
