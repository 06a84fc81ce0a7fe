"""The strategy interface: ``J`` and loss values in, shared update and per-loss weights out."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from typing_extensions import Self

__all__ = ["Bindable", "NoneStrategy", "Strategy", "check_num_losses"]


def check_num_losses(num_losses: object, *, minimum: int = 1) -> int:
    """Return ``num_losses`` if it is an integer ``>= minimum``, else raise ``ValueError``."""
    if isinstance(num_losses, bool) or not isinstance(num_losses, int) or num_losses < minimum:
        raise ValueError(f"num_losses must be an integer >= {minimum}, got {num_losses!r}")
    return num_losses


class Bindable:
    """An object built without the number of losses K, which the module supplies later.

    Strategies and reweighting rules take their options in the constructor; K comes from the
    module that adopts them (:meth:`bind`), or from the first ``[K, P]`` matrix they see.
    Binding twice with the same K is a no-op; with another K it raises.
    """

    _num_losses: int | None = None

    @property
    def num_losses(self) -> int:
        """K, once bound.

        Raises:
            RuntimeError: not bound yet.
        """
        if self._num_losses is None:
            raise RuntimeError(
                f"{type(self).__name__} is not bound to a number of losses yet; the module "
                "binds it when it adopts it, or call .bind(num_losses)"
            )
        return self._num_losses

    @num_losses.setter
    def num_losses(self, value: int) -> None:
        self.bind(value)

    @property
    def is_bound(self) -> bool:
        """Whether K is known."""
        return self._num_losses is not None

    def bind(self, num_losses: int) -> Self:
        """Supply K (the module calls this when it adopts the object) and return ``self``.

        Args:
            num_losses: the number of losses K.

        Raises:
            ValueError: K is not a valid count for this object, or the object is already bound
                to another K (build a new one for another module).
        """
        self._check_num_losses(num_losses)
        if self._num_losses is not None:
            if self._num_losses != num_losses:
                raise ValueError(
                    f"{type(self).__name__} is bound to num_losses={self._num_losses}, cannot "
                    f"bind it to {num_losses}; build a new {type(self).__name__} for this module"
                )
            return self
        self._num_losses = num_losses
        self._on_bind(num_losses)
        return self

    def _check_num_losses(self, num_losses: int) -> None:
        check_num_losses(num_losses)

    def _on_bind(self, num_losses: int) -> None:
        """Allocate the state that needs K (override)."""
        del num_losses

    def _bound_options(self) -> dict[str, Any]:
        return {"num_losses": self._num_losses} if self._num_losses is not None else {}


class Strategy(Bindable):
    """Turns the per-loss gradient matrix into the update applied to the shared parameters.

    A strategy sees tensors only (no Trainer, no LightningModule), so it can be tested with
    plain matrices. It owns its options (the constructor validates them) and is built without
    K: the module binds it (:meth:`bind`) when it adopts it, and :meth:`update` binds it to
    ``jac.shape[0]`` if nobody did. State that must survive a checkpoint (EMA weights, step
    counters) goes through :meth:`state_dict` / :meth:`load_state_dict`.

    Subclasses set :attr:`name` and implement :meth:`update`. Strategies that need per-loss
    adapters on the trunk set :attr:`uses_adapters` and implement ``adapter_options()``,
    :meth:`adapter_inputs` and :meth:`adapter_updates`.
    """

    _owner: weakref.ref[Any] | None = None  # the module that adopted it (set by the module)

    def __getstate__(self) -> dict[str, Any]:
        """A copy or a pickle belongs to no module: ``copy.deepcopy(strategy)`` is the way to
        give a second module the same options."""
        state = self.__dict__.copy()
        state.pop("_owner", None)
        return state

    def owned_by_other(self, module: object) -> bool:
        """Whether another module, still alive, adopted this object."""
        owner = self._owner() if self._owner is not None else None
        return owner is not None and owner is not module

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

    def stateful_update(self) -> bool:
        """Whether the next :meth:`update` changes state that non-finite inputs would corrupt.

        A step where it does checks finiteness on the host first; the others may defer the
        check to the device (``PINNModule(finite_check="deferred")``). Default: True.
        """
        return True

    def adapter_options(self) -> dict[str, Any]:
        """Keyword arguments of ``PerLossAdapter(trunk, **adapter_options())``."""
        raise NotImplementedError(f"strategy {self.name!r} does not use adapters")

    def adapter_inputs(self, adapters: Sequence[Sequence[Tensor]]) -> list[list[Tensor]]:
        """For each loss k, the adapter parameters whose gradient of ``L_k`` is needed.

        Args:
            adapters: the parameters of adapter j, for j = 0..K-1.
        """
        raise NotImplementedError(f"strategy {self.name!r} does not use adapters")

    def adapter_updates(
        self, grads: Sequence[Tensor], weights: Tensor, sizes: Sequence[int]
    ) -> list[Tensor]:
        """The flat update ``[n_j]`` of each adapter j from the per-loss adapter gradients.

        Args:
            grads: for each loss k, the flat gradient of ``L_k`` over ``adapter_inputs()[k]``.
            weights: the per-loss weights ``[K]`` returned by :meth:`update`.
            sizes: number of elements ``n_j`` of adapter j.
        """
        raise NotImplementedError(f"strategy {self.name!r} does not use adapters")

    def _check_rows(self, jac: Tensor) -> None:
        """Bind to ``jac.shape[0]`` if unbound; raise unless ``jac`` is ``[K, P]``."""
        if jac.ndim == 2 and not self.is_bound:
            self.bind(jac.shape[0])
        if jac.ndim != 2 or jac.shape[0] != self.num_losses:
            raise ValueError(f"jac must have shape [{self.num_losses}, P], got {tuple(jac.shape)}")

    def options(self) -> dict[str, Any]:
        """The constructor options (and ``num_losses`` once bound), enough to rebuild it."""
        return self._bound_options()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items() if k != "num_losses")
        return f"{type(self).__name__}({opts})"


class NoneStrategy(Strategy):
    """No intervention: ``d = Σ_k g_k`` (the gradient of the summed loss).

    Args:
        num_losses: K (optional: the module supplies it).
    """

    name = "none"

    def __init__(self, num_losses: int | None = None) -> None:
        if num_losses is not None:
            self.bind(num_losses)

    def update(
        self, jac: Tensor, losses: Tensor, blocks: Sequence[slice] | None = None
    ) -> tuple[Tensor, Tensor]:
        weights = torch.ones(jac.shape[0], dtype=jac.dtype, device=jac.device)
        return jac.sum(dim=0), weights

    def stateful_update(self) -> bool:
        return False
