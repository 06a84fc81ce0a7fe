"""ReLoBRaLo: relative loss balancing with random lookback (a loss-based reweighting rule)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_pinn._values import check_flag, check_integer
from lightning_pinn.strategies._rules import ReweightRule, check_fraction, check_positive

__all__ = ["ReLoBRaLoRule"]


class ReLoBRaLoRule(ReweightRule):
    """Relative loss balancing with random lookback (Bischof & Kraus 2021, arXiv:2110.09813).

    "Multi-objective loss balancing for physics-informed deep learning", with
    ``λ̂(t, t') = K · softmax_k(L_k(t) / (T · L_k(t') + ε))``::

        λ(t) = ρ α λ(t−1) + (1 − ρ) α λ̂(t, 0) + (1 − α) λ̂(t, t−1)

    with ``ρ ~ Bernoulli(rho)``; as in the authors' implementation the first call keeps
    ``λ = 1`` and the second uses ``λ̂(1, 0)`` alone. The Bernoulli draw comes from a generator
    seeded with ``seed + step`` (identical on every DDP rank, resumable); with
    ``expected_rho=True`` ρ is replaced by its expectation. Loss-based: invariant to a common
    scale of the losses (up to ε).

    Args:
        num_losses: K (optional: the strategy holding the rule binds it).
        alpha: EMA weight of the history, in ``[0, 1)``.
        temperature: softmax temperature T > 0.
        rho: probability of keeping the history (no lookback), in ``[0, 1]``.
        expected_rho: use ρ's expectation instead of a Bernoulli draw.
        seed: seed of the Bernoulli draws.
        eps: ε in the ratios.
        max_weight: optional upper bound.
    """

    name = "relobralo"

    def __init__(
        self,
        num_losses: int | None = None,
        alpha: float = 0.999,
        temperature: float = 0.1,
        rho: float = 0.99,
        expected_rho: bool = False,
        seed: int = 0,
        eps: float = 1e-12,
        max_weight: float | None = None,
    ) -> None:
        self.alpha = check_fraction("alpha", alpha)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho must be in [0, 1], got {rho!r}")
        self.temperature = check_positive("temperature", temperature)
        self.rho = float(rho)
        self.expected_rho = check_flag("expected_rho", expected_rho)
        self.seed = check_integer("seed", seed)
        self.eps = check_positive("eps", eps)
        self.last_losses = torch.ones(0)
        self.init_losses = torch.ones(0)
        super().__init__(num_losses, max_weight)

    def _on_bind(self, num_losses: int) -> None:
        super()._on_bind(num_losses)
        self.last_losses = torch.ones(num_losses)
        self.init_losses = torch.ones(num_losses)

    def options(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "temperature": self.temperature,
            "rho": self.rho,
            "expected_rho": self.expected_rho,
            "seed": self.seed,
            "eps": self.eps,
            "max_weight": self.max_weight,
        }

    def _balance(self, losses: Tensor, reference: Tensor) -> Tensor:
        ratio = losses / (self.temperature * reference + self.eps)  # (K,)
        return self.num_losses * torch.softmax(ratio - ratio.amax(), dim=0)

    def _draw_rho(self) -> float:
        if self.expected_rho:
            return self.rho
        gen = torch.Generator().manual_seed(self.seed + self.step)
        return float(torch.rand((), generator=gen) < self.rho)  # a CPU draw: no device sync

    def _update(self, norms: Tensor, losses: Tensor, jac: Tensor) -> Tensor:
        losses = torch.nan_to_num(losses.detach().abs(), nan=0.0)
        self.last_losses = self.last_losses.to(losses.device)
        self.init_losses = self.init_losses.to(losses.device)
        if self.step == 0:
            self.init_losses = losses.clone()
            self.last_losses = losses.clone()
            return self.weights
        alpha, rho = (0.0, 1.0) if self.step == 1 else (self.alpha, self._draw_rho())
        recent = self._balance(losses, self.last_losses)
        lookback = self._balance(losses, self.init_losses)
        self.last_losses = losses.clone()
        return rho * alpha * self.weights + (1 - rho) * alpha * lookback + (1 - alpha) * recent

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "last_losses": self.last_losses.detach().clone(),
            "init_losses": self.init_losses.detach().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last_losses = torch.as_tensor(state["last_losses"], dtype=torch.float32).clone()
        self.init_losses = torch.as_tensor(state["init_losses"], dtype=torch.float32).clone()
