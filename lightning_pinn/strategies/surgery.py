"""The ``surgery`` strategy: ``d = A(J)`` for a torchjd aggregator A."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from lightning_pinn._values import check_flag, check_integer
from lightning_pinn.strategies._base import Strategy

__all__ = ["AGGREGATOR_NAMES", "SurgeryStrategy", "build_aggregator"]

# name -> torchjd.aggregation class name; all stateless, none needs options.
_AGGREGATORS: dict[str, str] = {
    "upgrad": "UPGrad",
    "pcgrad": "PCGrad",
    "config": "ConFIG",
    "mgda": "MGDA",
    "dualproj": "DualProj",
    "imtlg": "IMTLG",
    "alignedmtl": "AlignedMTL",
    "graddrop": "GradDrop",
    "random": "Random",
    "mean": "Mean",
    "sum": "Sum",
}
AGGREGATOR_NAMES: tuple[str, ...] = tuple(_AGGREGATORS)
_RANDOMISED = frozenset({"pcgrad", "graddrop", "random"})
_INSTALL = 'pip install "lightning_pinn[surgery]"'


def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def build_aggregator(name: str) -> Callable[[Tensor], Tensor]:
    """The torchjd aggregator called ``name`` (case-insensitive, ``-``/``_`` ignored).

    Raises:
        ValueError: unknown name (the message lists :data:`AGGREGATOR_NAMES`).
        ImportError: torchjd (or the QP solver UPGrad/DualProj need) is not installed.
    """
    key = _normalise(name) if isinstance(name, str) else name
    if key not in _AGGREGATORS:
        raise ValueError(
            f"unknown aggregator {name!r}; valid aggregators are "
            f"{', '.join(map(repr, AGGREGATOR_NAMES))}"
        )
    try:
        from torchjd import aggregation
    except ImportError as err:
        raise ImportError(
            f"the surgery strategy needs torchjd; install it with: {_INSTALL}"
        ) from err
    try:
        return getattr(aggregation, _AGGREGATORS[key])()
    except ImportError as err:  # UPGrad / DualProj: qpsolvers + quadprog
        raise ImportError(
            f"aggregator {name!r} needs torchjd's optional QP solver ({err}); install it with: "
            f"{_INSTALL}"
        ) from err


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """The global RNG of the CPU and ``device`` seeded with ``seed``, restored on exit."""
    cuda = device.type == "cuda"
    index = (
        (device.index if device.index is not None else torch.cuda.current_device())
        if cuda
        else None
    )
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


class SurgeryStrategy(Strategy):
    """Gradient surgery: aggregate ``J`` with a torchjd aggregator.

    ``d = A(J)``, or with ``blockwise=True`` ``d = [A(J[:, b_1]), A(J[:, b_2]), ...]`` over the
    parameter blocks the module passes (network weights, then trainable PDE coefficients).
    Randomised aggregators (PCGrad, GradDrop, Random) run under a global RNG seeded with
    ``surgery_seed + step`` inside ``torch.random.fork_rng``, so every DDP rank computes the
    same update and the caller's RNG stream is untouched.

    The weights returned for logging are the aggregator's row weights ``w`` (``d = w @ J``) for
    weighted aggregators (all but ConFIG and GradDrop, for which they are ones); blockwise,
    the mean of the blocks' weights. PCGrad, UPGrad, DualProj and MGDA solve small problems on
    the host (torchjd's implementation), so this strategy synchronises with the device.

    Args:
        num_losses: K (optional: the module supplies it when it adopts the strategy).
        aggregator: one of :data:`AGGREGATOR_NAMES` (case-insensitive).
        blockwise: aggregate each parameter block separately.
        surgery_seed: seed of randomised aggregators.

    Raises:
        ValueError: unknown aggregator name.
        ImportError: torchjd is missing (``pip install "lightning_pinn[surgery]"``).

    Example:
        >>> s = SurgeryStrategy(aggregator="mgda")
        >>> d, w = s.update(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.ones(2))
    """

    name = "surgery"

    def __init__(
        self,
        num_losses: int | None = None,
        aggregator: str = "upgrad",
        blockwise: bool = False,
        surgery_seed: int = 0,
    ) -> None:
        self.aggregator = aggregator
        self.blockwise = check_flag("blockwise", blockwise)
        self.surgery_seed = check_integer("surgery_seed", surgery_seed)
        self._key = _normalise(aggregator) if isinstance(aggregator, str) else aggregator
        self._agg: Any = build_aggregator(aggregator)
        self.step = 0
        if num_losses is not None:
            self.bind(num_losses)

    def _aggregate(self, jac: Tensor) -> tuple[Tensor, Tensor]:
        weighting = getattr(self._agg, "weighting", None)
        if self._key != "config" and weighting is not None:
            weights = weighting(jac)  # (K,), what torchjd's WeightedAggregator.forward does
            return weights @ jac, weights
        ones = torch.ones(jac.shape[0], dtype=jac.dtype, device=jac.device)
        return self._agg(jac), ones

    def _blocks(self, jac: Tensor, blocks: Sequence[slice] | None) -> list[slice]:
        p = jac.shape[1]
        if not self.blockwise or not blocks:
            return [slice(0, p)]
        spans = [b.indices(p) for b in blocks]
        starts = [0] + [stop for _, stop, _ in spans[:-1]]
        if (
            [s for s, _, _ in spans] != starts
            or spans[-1][1] != p
            or any(step != 1 for _, _, step in spans)
        ):
            raise ValueError(
                f"blocks must be contiguous slices covering [0, {p}) in order, got {list(blocks)}"
            )
        return list(blocks)

    def update(
        self, jac: Tensor, losses: Tensor, blocks: Sequence[slice] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(d, weights)``: the aggregated update ``[P]`` and the row weights ``[K]``.

        Args:
            jac: per-loss gradients ``[K, P]``.
            losses: raw loss values ``[K]`` (unused).
            blocks: column ranges of the parameter blocks (used with ``blockwise=True``).
        """
        self._check_rows(jac)
        parts, weights = [], []
        with torch.no_grad():
            for block in self._blocks(jac, blocks):
                if self._key in _RANDOMISED:
                    with _seeded(self.surgery_seed + self.step, jac.device):
                        d, w = self._aggregate(jac[:, block])
                else:
                    d, w = self._aggregate(jac[:, block])
                parts.append(d)
                weights.append(w)
        self.step += 1
        update = parts[0] if len(parts) == 1 else torch.cat(parts)  # (P,)
        return update, torch.stack(weights).mean(dim=0)

    def options(self) -> dict[str, Any]:
        return {
            **self._bound_options(),
            "aggregator": self.aggregator,
            "blockwise": self.blockwise,
            "surgery_seed": self.surgery_seed,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state.get("step", 0))
