"""Reweighting rules: per-loss norms, loss values and ``J`` in, weights ``[K]`` out.

Each rule is a small stateful object with no reference to a Trainer (docs/concepts.md). It is
built without K (the strategy that holds it binds it), reads quantities the training step has
already computed (no extra backward pass), keeps its state on the device of its inputs (no
host synchronisation) and checkpoints it through ``state_dict``/``load_state_dict`` as plain
tensors and numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from lightning_pinn._values import check_flag
from lightning_pinn.strategies._base import Bindable

__all__ = [
    "FixedRule",
    "GradNormRule",
    "LRARule",
    "ReweightRule",
    "check_flag",
    "check_fraction",
    "check_positive",
]

_TINY = 1e-30


def check_positive(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number > 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_fraction(name: str, value: float, *, closed_low: bool = True) -> float:
    ok = (0.0 <= value < 1.0) if closed_low else (0.0 < value <= 1.0)
    if not (isinstance(value, (int, float)) and ok):
        interval = "[0, 1)" if closed_low else "(0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


class ReweightRule(Bindable):
    """Base class: ``weights = rule(norms, losses, jac)`` with state that checkpoints.

    Args:
        num_losses: K (optional: the strategy holding the rule binds it).
        max_weight: optional upper bound on every weight (adapters can drive gradient norms
            of absorbed losses to zero, and unbounded weights then diverge).
    """

    name: ClassVar[str] = ""

    def __init__(self, num_losses: int | None = None, max_weight: float | None = None) -> None:
        if max_weight is not None and not (max_weight > 0 and math.isfinite(max_weight)):
            raise ValueError(
                f"max_weight must be a positive finite number or None, got {max_weight!r}"
            )
        self.max_weight = max_weight
        self.step = 0
        self.weights = torch.ones(0)  # (K,) once bound, moved to the input device on first use
        if num_losses is not None:
            self.bind(num_losses)

    def _on_bind(self, num_losses: int) -> None:
        self.weights = torch.ones(num_losses)

    def __call__(self, norms: Tensor, losses: Tensor, jac: Tensor) -> Tensor:
        """Update the state and return the weights.

        Args:
            norms: per-loss gradient norms ``[K]`` (rows of ``jac``).
            losses: raw loss values ``[K]``.
            jac: per-loss gradients ``[K, P]``.

        Returns:
            Positive finite weights ``[K]`` (fp32, on ``jac``'s device).
        """
        if not self.is_bound and norms.ndim == 1:
            self.bind(norms.shape[0])
        if norms.shape != (self.num_losses,) or losses.shape != (self.num_losses,):
            raise ValueError(
                f"{type(self).__name__} expects norms and losses of shape [{self.num_losses}], "
                f"got {tuple(norms.shape)} and {tuple(losses.shape)}"
            )
        self.weights = self.weights.to(device=jac.device, dtype=torch.float32)
        new = self._update(norms.float(), losses.float(), jac)
        new = torch.nan_to_num(new, nan=1.0, posinf=torch.finfo(torch.float32).max)
        upper = self.max_weight if self.max_weight is not None else torch.finfo(torch.float32).max
        self.weights = new.clamp(min=_TINY, max=upper)
        self.step += 1
        return self.weights

    def _update(self, norms: Tensor, losses: Tensor, jac: Tensor) -> Tensor:
        raise NotImplementedError

    def refreshes_next(self) -> bool:
        """Whether the next call recomputes the weights from its inputs (default: every call)."""
        return True

    def options(self) -> dict[str, Any]:
        """The constructor options (without K), enough to rebuild the rule."""
        return {"max_weight": self.max_weight}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "weights": self.weights.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.weights = torch.as_tensor(state["weights"], dtype=torch.float32).clone()

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


class GradNormRule(ReweightRule):
    """Gradient-norm balancing: ``λ̂_k = Σ_j n_j / n_k``, smoothed by an EMA.

    ``λ ← ema · λ + (1 − ema) · λ̂`` every ``every`` steps, starting from ``λ = 1``. Norms are
    floored at ``min_norm · max_j n_j`` (a relative floor, so the rule stays invariant to a
    common scale of the gradients) and a zero-norm row gets a large but finite weight; bound it
    with ``max_weight``.

    Args:
        num_losses: K (optional: the strategy holding the rule binds it).
        ema: weight of the previous value, in ``[0, 1)``.
        every: refresh the weights every ``every`` steps (held in between; 1: every step).
        max_weight: optional upper bound.
        min_norm: relative floor of the norms.

    Example:
        >>> rule = GradNormRule(every=100)  # K comes from the strategy that holds it
        >>> rule.bind(2)(torch.tensor([1.0, 4.0]), torch.ones(2), torch.eye(2))
        tensor([1.4000, 1.0250])
    """

    name = "gradnorm"

    def __init__(
        self,
        num_losses: int | None = None,
        ema: float = 0.9,
        every: int = 1,
        max_weight: float | None = None,
        min_norm: float = 1e-8,
    ) -> None:
        super().__init__(num_losses, max_weight)
        self.ema = check_fraction("ema", ema)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        check_positive("min_norm", min_norm)
        self.every = every
        self.min_norm = float(min_norm)

    def options(self) -> dict[str, Any]:
        return {
            "ema": self.ema,
            "every": self.every,
            "max_weight": self.max_weight,
            "min_norm": self.min_norm,
        }

    def refreshes_next(self) -> bool:
        return self.step % self.every == 0

    def _update(self, norms: Tensor, losses: Tensor, jac: Tensor) -> Tensor:
        if self.step % self.every != 0:
            return self.weights
        floor = (self.min_norm * norms.amax()).clamp_min(_TINY)
        n = torch.maximum(norms, floor)  # (K,)
        target = n.sum() / n
        return self.ema * self.weights + (1.0 - self.ema) * target


class LRARule(ReweightRule):
    """Learning-rate annealing (Wang, Teng & Perdikaris 2021, SIAM J. Sci. Comput. 43(5)).

    "Understanding and mitigating gradient flow pathologies in physics-informed neural
    networks", Algorithm 1. Loss 0 is the PDE residual and keeps ``λ_0 = 1``; for ``i >= 1``::

        λ̂_i = max|∇L_0| / mean|∇(λ_i L_i)| = max|J_0| / (λ_i · mean|J_i|)
        λ_i ← beta · λ_i + (1 − beta) · λ̂_i         (beta = 0.9, as in the authors' code)

    With ``weighted=False`` the denominator is ``mean|J_i|`` (the loss's own gradient). The
    denominator is floored at ``min_norm · max|J_0|``. Only permutations of losses 1..K-1 are
    symmetries of this rule (loss 0 plays a special role).

    Args:
        num_losses: K (loss 0 is the residual; optional: the strategy binds it).
        beta: weight of the previous value, in ``[0, 1)``.
        weighted: use ``∇(λ_i L_i)`` (True, as the issue and the paper's Algorithm 1) or
            ``∇L_i`` in the denominator.
        max_weight: optional upper bound.
        min_norm: relative floor of the denominator.

    Example:
        >>> rule = LRARule(2)
        >>> jac = torch.tensor([[4.0, -2.0], [1.0, 1.0]])
        >>> rule(jac.norm(dim=1), torch.ones(2), jac)  # λ̂_1 = 4 / 1 = 4 -> 0.9 + 0.4
        tensor([1.0000, 1.3000])
    """

    name = "lra"

    def __init__(
        self,
        num_losses: int | None = None,
        beta: float = 0.9,
        weighted: bool = True,
        max_weight: float | None = None,
        min_norm: float = 1e-8,
    ) -> None:
        super().__init__(num_losses, max_weight)
        self.beta = check_fraction("beta", beta)
        self.weighted = check_flag("weighted", weighted)
        self.min_norm = check_positive("min_norm", min_norm)

    def options(self) -> dict[str, Any]:
        return {
            "beta": self.beta,
            "weighted": self.weighted,
            "max_weight": self.max_weight,
            "min_norm": self.min_norm,
        }

    def _update(self, norms: Tensor, losses: Tensor, jac: Tensor) -> Tensor:
        grad_abs = jac.detach().abs().float()  # (K, P)
        top = grad_abs[0].amax() if grad_abs.shape[1] else grad_abs.new_zeros(())
        mean = grad_abs.mean(dim=1) if grad_abs.shape[1] else grad_abs.new_zeros(len(grad_abs))
        if self.weighted:
            mean = self.weights * mean  # mean|∇(λ_i L_i)|, (K,)
        floor = (self.min_norm * top).clamp_min(_TINY)
        target = top / torch.maximum(mean, floor)  # (K,)
        new = self.beta * self.weights + (1.0 - self.beta) * target  # (K,)
        return torch.cat([new.new_ones(1), new[1:]])  # λ_0 = 1 (no in-place write: no sync)


class FixedRule(ReweightRule):
    """Constant weights (``weights``, default all ones: the plain sum of gradients).

    Args:
        num_losses: K (optional: the strategy holding the rule binds it).
        weights: K positive finite weights.
        max_weight: optional upper bound.
    """

    name = "fixed"

    def __init__(
        self,
        num_losses: int | None = None,
        weights: Sequence[float] | Tensor | None = None,
        max_weight: float | None = None,
    ) -> None:
        self._given: Tensor | None = None
        if weights is not None:
            w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
            if num_losses is not None and w.numel() != num_losses:
                w = torch.zeros(0)  # reported below with the expected count
            if w.numel() == 0 or not bool(torch.isfinite(w).all() & (w > 0).all()):
                count = f"{num_losses} " if num_losses is not None else ""
                raise ValueError(f"weights must be {count}positive finite numbers, got {weights!r}")
            self._given = w.clone()
        super().__init__(num_losses, max_weight)

    def _on_bind(self, num_losses: int) -> None:
        if self._given is None:
            self.weights = torch.ones(num_losses)
            return
        if self._given.numel() != num_losses:
            raise ValueError(
                f"weights must be {num_losses} positive finite numbers (one per loss), got "
                f"{self._given.tolist()}"
            )
        self.weights = self._given.clone()

    def options(self) -> dict[str, Any]:
        given = self._given.tolist() if self._given is not None else None
        return {"weights": given, "max_weight": self.max_weight}

    def refreshes_next(self) -> bool:
        return False

    def _update(self, norms: Tensor, losses: Tensor, jac: Tensor) -> Tensor:
        return self.weights
