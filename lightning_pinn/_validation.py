"""Validation against a reference solution: the relative L2 error on ``(points, u_ref)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from lightning_pinn.metrics import RelativeL2Error

__all__ = ["ReferenceValidation"]


class ReferenceValidation:
    """The validation hooks of :class:`~lightning_pinn.PINNModule` (mixed into it).

    Logs ``val/rel_l2`` (and ``val/rel_l2/<field>`` with several ``field_names``). The points
    are cast to the model's dtype, so an fp64 model validates in fp64.
    """

    model: nn.Module
    val_rel_l2: RelativeL2Error
    field_names: Sequence[str] | None
    device: torch.device

    if TYPE_CHECKING:  # the LightningModule's

        def __call__(self, x: Tensor) -> Tensor: ...

        def log(self, name: str, value: Any, **kwargs: Any) -> None: ...

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Accumulate the relative L2 error on ``(points, reference)`` batches."""
        x, u_ref = batch
        dtype = next(self.model.parameters()).dtype  # the points follow the model
        with torch.autocast(device_type=self.device.type, enabled=False):
            pred = self(x.to(dtype))
        self.val_rel_l2.update(pred.reshape(u_ref.shape).float(), u_ref.float())

    def on_validation_epoch_end(self) -> None:
        pooled = self.val_rel_l2.compute()
        self.log("val/rel_l2", pooled, sync_dist=False)
        if self.field_names is not None and len(self.field_names) > 1:
            per_field = self.val_rel_l2.compute_per_field()
            for name, value in zip(self.field_names, per_field, strict=True):
                self.log(f"val/rel_l2/{name}", value)
        self.val_rel_l2.reset()
