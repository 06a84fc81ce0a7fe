"""What ``ConflictCallback.setup`` checks before the first step."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from lightning_pinn.module import PINNModule

__all__ = ["check_run"]


def check_run(
    trainer: L.Trainer, pl_module: L.LightningModule, probe_steps: int, log_every: int
) -> PINNModule:
    """Raise unless the run can be probed; warn about a logging interval Lightning drops.

    Raises:
        TypeError: the module is not a :class:`~lightning_pinn.PINNModule`.
        ValueError: fewer than 2 losses, or ``max_steps`` ends before the probe.
    """
    if not isinstance(pl_module, PINNModule):
        raise TypeError(
            f"ConflictCallback needs a lightning_pinn.PINNModule (it reads its "
            f"last_record), got {type(pl_module).__name__}; subclass PINNModule and "
            "override losses(batch)"
        )
    if pl_module.num_losses < 2:
        raise ValueError(
            f"ConflictCallback compares pairs of losses and needs K >= 2, but the module "
            f"has {pl_module.num_losses} loss ({list(pl_module.loss_names)}); remove the "
            "callback for single-loss problems"
        )
    if 0 < trainer.max_steps < probe_steps:
        raise ValueError(
            f"Trainer(max_steps={trainer.max_steps}) ends before the probe of "
            f"probe_steps={probe_steps} steps; lower probe_steps or raise max_steps"
        )
    if log_every > 0 and trainer.log_every_n_steps > 0 and log_every % trainer.log_every_n_steps:
        rank_zero_warn(
            f"ConflictCallback(log_every_n_steps={log_every}) is not a multiple of "
            f"Trainer(log_every_n_steps={trainer.log_every_n_steps}); Lightning only "
            "flushes logged values on its own interval, so some values will be dropped"
        )
    return pl_module
