"""``CollocationDataModule``: fresh points per loss every step, plus the evaluation set."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_pinn._values import check_integer
from lightning_pinn.data._regions import _METHODS, PointSet, Region, SamplingMethod
from lightning_pinn.data._stream import _CollocationStream, _Slices

__all__ = ["CollocationDataModule"]


class CollocationDataModule(L.LightningDataModule):
    """Collocation points for each loss, resampled every step (or fixed), plus an evaluation set.

    Training batches are dicts ``{set name: [n, d] points}``; one Lightning epoch is infinite,
    so the step budget is set with ``Trainer(max_steps=...)`` and validation with
    ``val_check_interval=<steps>``. Validation batches are ``(points, reference)`` pairs.

    Args:
        sets: point sets by name (usually the loss names), each a :class:`PointSet` or a
            ``(region, n)`` pair.
        seed: base seed; batch i on rank r is drawn from ``(seed, r, i)``.
        method: ``"uniform"`` (default), ``"lhs"`` or ``"sobol"``.
        resample: ``True`` (default) draws fresh points every step; ``False`` draws batch 0
            once (from ``(seed, rank, 0)``) and trains on those fixed points every step.
        eval_points: fixed ``[N, d]`` evaluation points for ``val/rel_l2``.
        reference: ``[N, d] -> [N, m]`` exact/reference solution, evaluated once on
            ``eval_points`` at setup; or pass ``eval_values`` directly.
        eval_values: precomputed ``[N, m]`` reference values.
        eval_batch_size: points per validation batch.

    Example:
        >>> line = Box((0.0,), (1.0,))
        >>> dm = CollocationDataModule(
        ...     {"residual": (line, 128), "boundary": (BoxBoundary(line, (0,)), 2)},
        ...     seed=0,
        ... )
    """

    def __init__(
        self,
        sets: Mapping[str, PointSet | tuple[Region, int]],
        *,
        seed: int = 0,
        method: SamplingMethod = "uniform",
        resample: bool = True,
        eval_points: Tensor | None = None,
        reference: Callable[[Tensor], Tensor] | None = None,
        eval_values: Tensor | None = None,
        eval_batch_size: int = 8192,
    ) -> None:
        super().__init__()
        if method not in _METHODS:
            raise ValueError(f"unknown sampling method {method!r}; valid: {', '.join(_METHODS)}")
        if not sets:
            raise ValueError("sets must name at least one point set")
        if not isinstance(resample, bool):
            raise TypeError(f"resample must be True or False, got {resample!r}")
        self.sets: dict[str, PointSet] = {
            name: ps if isinstance(ps, PointSet) else PointSet(*ps) for name, ps in sets.items()
        }
        self.seed = check_integer("seed", seed)  # 1.5 was truncated before
        self.method: SamplingMethod = method
        self.resample = resample
        self.eval_points = eval_points
        self.reference = reference
        self.eval_values = eval_values
        if check_integer("eval_batch_size", eval_batch_size) < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        self.eval_batch_size = eval_batch_size
        self.consumed = 0  # training batches handed to the model so far
        self._stream: _CollocationStream | None = None

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self._trainer_attached() else 0
        stream = _CollocationStream(
            self.sets, self.seed, self.method, rank, self.consumed, self.resample
        )
        self._stream = stream
        return DataLoader(stream, batch_size=None, num_workers=0)

    def rewind(self, index: int) -> None:
        """Make the next training batch batch ``index`` of the stream (the guarded switch).

        Batches the loader has already drawn ahead (Lightning prefetches one) are drawn again
        with the right indices when they are handed to the model, so the step after a rewind
        sees exactly the batch an uninterrupted stream at ``index`` would give.
        """
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index!r}")
        self.consumed = int(index)
        if self._stream is not None:
            self._stream.stale = len(self._stream.drawn)
            self._stream.next_index = self.consumed + self._stream.stale

    def held_out(
        self, index: int = 2**40, rank: int = 0, seed_offset: int = 7_777_777
    ) -> dict[str, Tensor]:
        """A batch no training step sees: drawn from another seed, always resampled.

        Fresh points even with ``resample=False``; each rank draws its own.
        """
        seed = self.seed + seed_offset
        return _CollocationStream(self.sets, seed, self.method, rank, 0, True).batch(index)

    def val_dataloader(self) -> DataLoader | list:
        if self.eval_points is None:
            return []
        if self.eval_values is None:
            if self.reference is None:
                raise ValueError("eval_points needs a reference function or eval_values")
            with torch.no_grad():
                self.eval_values = self.reference(self.eval_points).detach()
        if self.eval_points.shape[0] == 0:
            raise ValueError(
                f"eval_points is empty (shape {tuple(self.eval_points.shape)}); pass at least "
                "one evaluation point, or eval_points=None for no validation"
            )
        return self._slices(_checked_values(self.eval_points, self.eval_values))

    def _slices(self, values: Tensor) -> DataLoader:
        """``(points, values)`` slices of ``eval_batch_size`` evaluation points, in order."""
        assert self.eval_points is not None
        data = _Slices(self.eval_points.float(), values.float(), self.eval_batch_size)
        return DataLoader(data, batch_size=None, shuffle=False)

    def test_dataloader(self) -> DataLoader | list:
        """The evaluation set, as :meth:`val_dataloader` (``trainer.test``: ``test/rel_l2``)."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader | list:
        """The evaluation points in batches of ``eval_batch_size`` (``trainer.predict``
        returns the prediction at each batch); an empty list without ``eval_points``."""
        if self.eval_points is None:
            return []
        return self._slices(self.eval_points)  # (points, points): predict_step reads [0]

    def setup(self, stage: str) -> None:
        """Refuse a fit that nothing would stop, warn about one without a step budget: the
        stream is infinite, so one epoch (and ``max_epochs``) never ends.

        Raises:
            ValueError: no ``max_steps``, ``max_time``, ``EarlyStopping`` or integer
                ``limit_train_batches``.
        """
        if stage == "fit" and self._trainer_attached() and self.trainer.max_steps in (-1, None):
            from lightning.pytorch.callbacks import EarlyStopping, Timer

            trainer = self.trainer
            limit = trainer.limit_train_batches
            bounded = (isinstance(limit, int) and not isinstance(limit, bool)) or bool(
                trainer.fast_dev_run
            )  # a batch limit ends each epoch, and max_epochs the run
            stoppers = (EarlyStopping, Timer)
            if not bounded and not any(isinstance(c, stoppers) for c in trainer.callbacks):
                raise ValueError(
                    "the collocation stream is infinite (one epoch never ends, so max_epochs "
                    "never stops a run) and the Trainer has no max_steps, max_time or "
                    "EarlyStopping: this fit would never end; set Trainer(max_steps=N)"
                )
            rank_zero_warn(
                "the collocation stream is infinite (one epoch never ends) and Trainer max_steps "
                "is unset, so training stops only at the Trainer's max_time or when "
                "interrupted; set Trainer(max_steps=N)",
                category=UserWarning,
            )

    def sample(self, index: int = 0, rank: int = 0) -> dict[str, Tensor]:
        """Batch ``index`` of the stream, as the training loop would receive it."""
        stream = _CollocationStream(self.sets, self.seed, self.method, rank, 0, self.resample)
        return stream.batch(index)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self._trainer_attached() and self.trainer.training:
            stream = self._stream
            if stream is not None and stream.drawn:
                stream.drawn.popleft()
                if stream.stale:  # drawn ahead before a rewind: draw the right batch
                    stream.stale -= 1
                    # in the dtypes of the batch it replaces, which the loop's precision
                    # plugin converted (float64 under precision="64-true")
                    batch = {
                        name: points.to(batch[name].dtype)
                        for name, points in stream.batch(self.consumed).items()
                    }
            self.consumed += 1
        return batch

    def _trainer_attached(self) -> bool:
        return self.trainer is not None

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed, "seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.consumed = int(state_dict["consumed"])


def _checked_values(points: Tensor, values: Tensor) -> Tensor:
    """``values`` as ``[N, m]`` for ``points`` ``[N, d]``, or a ValueError saying what is wrong.

    The relative L2 error divides by the norm of the values, so they must be finite and not
    all zero (a zero reference gives inf or nan, not an error).
    """
    n = points.shape[0]
    if values.shape[0] != n:
        raise ValueError(
            f"eval_values has {values.shape[0]} rows (shape {tuple(values.shape)}) but "
            f"eval_points has {n} (shape {tuple(points.shape)}); give one value row per point"
        )
    if not (torch.isfinite(points).all() and torch.isfinite(values).all()):
        raise ValueError("eval_points and eval_values must be finite (no nan or inf)")
    values = values.reshape(n, -1)
    if not values.abs().amax() > 0:
        raise ValueError(
            "eval_values are 0 at every evaluation point, so the relative L2 error "
            "(|u - u_ref| / |u_ref|) is undefined; evaluate where the solution is not zero"
        )
    return values
