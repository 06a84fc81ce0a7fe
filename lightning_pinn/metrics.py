"""Metrics: the relative L2 error ``||u - u_ref|| / ||u_ref||`` as a torchmetrics ``Metric``."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["RelativeL2Error"]


class RelativeL2Error(Metric):
    """Relative L2 error accumulated over batches.

    ``compute()`` returns the pooled error over all fields,
    ``sqrt(Σ|u - u_ref|² / Σ|u_ref|²)``; :meth:`compute_per_field` the error of each output
    column. Sums are kept in float64 and reduced with ``sum`` across processes.

    Args:
        num_fields: number of output columns m of ``[N, m]`` predictions.

    Example:
        >>> metric = RelativeL2Error()
        >>> metric.update(torch.ones(4, 1), 2 * torch.ones(4, 1))
        >>> float(metric.compute())
        0.5
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_fields: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_fields < 1:
            raise ValueError(f"num_fields must be >= 1, got {num_fields}")
        self.num_fields = num_fields
        zeros = torch.zeros(num_fields, dtype=torch.float64)
        self.add_state("err_sq", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("ref_sq", default=zeros.clone(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch: ``preds`` and ``target`` of shape ``[N, m]`` (or ``[N]`` when m = 1)."""
        if preds.shape != target.shape:
            raise ValueError(
                f"preds and target must have the same shape, got {tuple(preds.shape)} and "
                f"{tuple(target.shape)}"
            )
        preds = preds.reshape(preds.shape[0], -1).double()
        target = target.reshape(target.shape[0], -1).double()
        if preds.shape[1] != self.num_fields:
            raise ValueError(f"expected {self.num_fields} field(s) (columns), got {preds.shape[1]}")
        self.err_sq += (preds - target).pow(2).sum(dim=0)
        self.ref_sq += target.pow(2).sum(dim=0)

    def compute(self) -> Tensor:
        return (self.err_sq.sum() / self.ref_sq.sum().clamp_min(1e-300)).sqrt().float()

    def compute_per_field(self) -> Tensor:
        """Relative L2 error of each field, ``[m]`` (synced across processes like ``compute``)."""
        with self.sync_context():
            return (self.err_sq / self.ref_sq.clamp_min(1e-300)).sqrt().float()
