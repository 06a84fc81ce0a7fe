"""The strategy interface: ``J`` and loss values in, shared update and per-loss weights out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = ["Strategy", "NoneStrategy"]


class Strategy:
    """Turns the per-loss gradient matrix into the update applied to the shared parameters.

    A strategy sees tensors only (no Trainer, no LightningModule), so it can be tested with
    plain matrices. State that must survive a checkpoint (EMA weights, step counters) goes
    through :meth:`state_dict` / :meth:`load_state_dict`.

    Subclasses set :attr:`name` and implement :meth:`update`. Strategies that need per-loss
    adapters on the trunk set :attr:`uses_adapters` and expose ``adapter_options()``.
    """

    name: ClassVar[str] = ""
    uses_adapters: ClassVar[bool] = False

    def update(
        self, jac: Tensor, losses: Tensor, blocks: Sequence[slice] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Compute the shared update.

        Args:
            jac: per-loss gradients ``[K, P]`` (fp32).
            losses: the raw loss values ``[K]``.
            blocks: column ranges of parameter groups (network, PDE coefficients), for
                strategies that act per block.

        Returns:
            ``(d, weights)``: the update ``[P]`` written into the shared parameters' ``.grad``
            and the per-loss weights ``[K]`` (for logging and adapter routing).
        """
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The constructor options, enough to rebuild the strategy from a checkpoint."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class NoneStrategy(Strategy):
    """No intervention: ``d = Σ_k g_k`` (the gradient of the summed loss)."""

    name = "none"

    def update(
        self, jac: Tensor, losses: Tensor, blocks: Sequence[slice] | None = None
    ) -> tuple[Tensor, Tensor]:
        weights = torch.ones(jac.shape[0], dtype=jac.dtype, device=jac.device)
        return jac.sum(dim=0), weights
