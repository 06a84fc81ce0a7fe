"""Per-loss evaluation (the ``mode="per_loss"`` adapter design): which loss a forward belongs
to, the exact fallback for a ``losses()`` that does not say so, and the strategy update fed
with the adapter gradients (pathway norms)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor

from lightning_pinn.adapters import PerLossAdapter
from lightning_pinn.strategies import Strategy

if TYPE_CHECKING:
    from lightning_pinn.module import PINNModule

__all__ = [
    "adapter_inputs",
    "evaluate_losses",
    "loss_index",
    "loss_scope",
    "per_loss_adapter",
    "strategy_update",
]


def loss_index(loss_names: Sequence[str], loss: str) -> int:
    """The index of ``loss`` in ``loss_names``.

    Raises:
        ValueError: ``loss`` names no loss (the message lists the valid names).
    """
    try:
        return list(loss_names).index(loss)
    except ValueError:
        raise ValueError(
            f"loss={loss!r} names no loss of this module; valid names are {list(loss_names)}"
        ) from None


def per_loss_adapter(module: PINNModule) -> PerLossAdapter | None:
    """The module's :class:`PerLossAdapter` when it runs in ``"per_loss"`` mode, else None."""
    model = module.model
    if module.has_adapters and isinstance(model, PerLossAdapter) and model.mode == "per_loss":
        return model
    return None


@contextlib.contextmanager
def loss_scope(module: PINNModule, loss: str) -> Iterator[None]:
    """Every forward inside belongs to ``loss``: trunk + its adapter in ``"per_loss"`` mode.

    A no-op otherwise (no adapters, or the summed design): the losses stay bitwise the same,
    and the name is not checked (a problem's losses may be evaluated on a module with fewer
    losses, e.g. one with hard constraints).

    Raises:
        ValueError: under per-loss adapters, ``loss`` names no loss.
    """
    model = per_loss_adapter(module)
    if model is None:
        yield
        return
    with model.scope(loss_index(module.loss_names, loss)):
        yield


def _fallback_message(num_losses: int, owner: str) -> str:
    return (
        f"{owner}.losses() evaluates the network without saying which loss each forward "
        f"belongs to, so per-loss adapters fall back to an exact but slower evaluation: "
        f"losses() runs once per adapter, {num_losses} forward passes per step instead of one. "
        "Tag each forward with self(x, loss=name) or `with self.loss_scope(name):`"
    )


def evaluate_losses(module: PINNModule, batch: Any) -> Any:
    """``module.losses(batch)``; in ``"per_loss"`` mode, loss k through adapter k only.

    A ``losses()`` that tags its forwards is run once. One that evaluates the network outside
    any loss scope is run once per adapter instead (pass k with adapter k active for every
    forward, loss k kept from pass k), with one warning naming the cost.
    """
    model = per_loss_adapter(module)
    if model is None:
        return module.losses(batch)
    if not model.untagged:
        model.untagged_calls = 0
        out = module.losses(batch)
        if model.untagged_calls == 0:
            return out
        model.untagged = True
        rank_zero_warn(_fallback_message(module.num_losses, type(module).__name__))
    result: dict[str, Any] = {}
    for k, name in enumerate(module.loss_names):
        with model.scope(k, force=True):
            out = module.losses(batch)
        if not isinstance(out, Mapping) or name not in out:
            return out  # check_losses names what is wrong
        result[name] = out[name]
    return result


def adapter_inputs(module: PINNModule) -> list[list[Tensor]] | None:
    """For each loss, the adapter parameters whose gradient the strategy routes (or None)."""
    if module.has_adapters and module.strategy.uses_adapters:
        return module.strategy.adapter_inputs(module._adapter_groups())
    return None


def strategy_update(
    strategy: Strategy, jac: Tensor, values: Tensor, blocks: list[slice], own: list[Tensor]
) -> tuple[Tensor, Tensor]:
    """The strategy's ``(update [P], weights [K])``; adapter strategies also see ``h_k``."""
    if own and strategy.uses_adapters:
        return strategy.update(jac, values, blocks, adapter_grads=own)  # type: ignore[call-arg]
    return strategy.update(jac, values, blocks)
