"""Validation against a reference solution: the relative L2 error on ``(points, u_ref)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from lightning_pinn.metrics import RelativeL2Error

__all__ = ["ReferenceValidation"]


class ReferenceValidation:
    """The validation, test and predict hooks of :class:`~lightning_pinn.PINNModule` (mixed
    into it).

    Logs ``val/rel_l2`` (and ``val/rel_l2/<field>`` with several ``field_names``);
    ``trainer.test`` logs ``test/rel_l2`` on the same ``(points, reference)`` batches, and
    ``trainer.predict`` returns the network's prediction for each batch of points. The points
    are cast to the model's dtype, so an fp64 model validates in fp64.
    """

    model: nn.Module
    val_rel_l2: RelativeL2Error
    test_rel_l2: RelativeL2Error
    field_names: Sequence[str] | None
    device: torch.device

    if TYPE_CHECKING:  # the LightningModule's

        def __call__(self, x: Tensor) -> Tensor: ...

        def log(self, name: str, value: Any, **kwargs: Any) -> None: ...

    def _predict(self, x: Tensor) -> Tensor:
        dtype = next(self.model.parameters()).dtype  # the points follow the model
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self(x.to(dtype))

    def _accumulate(self, metric: RelativeL2Error, batch: Any) -> None:
        x, u_ref = batch
        metric.update(self._predict(x).reshape(u_ref.shape).float(), u_ref.float())

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Accumulate the relative L2 error on ``(points, reference)`` batches."""
        self._accumulate(self.val_rel_l2, batch)

    def on_validation_epoch_end(self) -> None:
        self._log_error(self.val_rel_l2, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """As :meth:`validation_step`, for ``trainer.test`` (logged as ``test/rel_l2``)."""
        self._accumulate(self.test_rel_l2, batch)

    def on_test_epoch_end(self) -> None:
        self._log_error(self.test_rel_l2, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """The prediction ``[N, m]`` at a batch of points: a ``[N, d]`` tensor, or a tuple or
        list whose first item is one (``TensorDataset``, ``(points, reference)`` batches).

        Raises:
            TypeError: any other batch.
        """
        x = batch[0] if isinstance(batch, tuple | list) and batch else batch
        if not isinstance(x, Tensor):
            raise TypeError(
                "predict_step expects a batch of points: a [N, d] tensor, or a tuple/list "
                f"whose first item is one, got {type(batch).__name__}"
            )
        return self._predict(x)

    def _log_error(self, metric: RelativeL2Error, stage: str) -> None:
        self.log(f"{stage}/rel_l2", metric.compute(), sync_dist=False)
        if self.field_names is not None and len(self.field_names) > 1:
            per_field = metric.compute_per_field()
            for name, value in zip(self.field_names, per_field, strict=True):
                self.log(f"{stage}/rel_l2/{name}", value)
        metric.reset()
