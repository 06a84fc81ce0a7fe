"""``AdapterLinear``: an ``nn.Linear`` with K loss-indexed low-rank adapters (DESIGN §5)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AdapterForm", "AdapterLinear", "Selection"]

AdapterForm = Literal["linear", "nonlinear"]
FORMS: tuple[str, ...] = ("linear", "nonlinear")

Selection = None | int | Literal["mean", "trunk"]
"""Which adapters a forward uses: None (all K summed), k (adapter k only), ``"mean"`` (the
mean of the K adapters) or ``"trunk"`` (none: the base layer)."""


class AdapterLinear(nn.Module):
    """Wraps an ``nn.Linear`` and adds K rank-r adapters, one per loss.

    The effective weight is ``W + (alpha / r) * Σ_k B_k A_k`` with ``A_k`` ``[r, in]``
    (Kaiming-uniform, ``a = sqrt(5)``, as ``nn.Linear`` and peft's LoRA) and ``B_k``
    ``[out, r]`` (zeros, so the output is unchanged at insertion). All K adapters are applied
    with one small matmul of the concatenated factors, ``B_cat`` ``[out, K r]`` @ ``A_cat``
    ``[K r, in]``, folded into the weight: ``y = x (W + s B_cat A_cat)ᵀ + b``. That costs
    ``out·K r·in`` multiply-adds per forward, independent of the number of points N, instead
    of ``2 N·K r·(in + out)`` for ``x A_catᵀ B_catᵀ``; PINN losses differentiate the forward
    twice more (PDE derivatives), which makes an N-dependent adapter path expensive. The
    output is mathematically identical; ``F.linear`` lets autocast pick the compute dtype.

    :attr:`active` selects the adapters a forward uses (see :data:`Selection`): None (all K,
    the summed design), k (adapter k only, the per-loss design: ``W + s B_k A_k``, folded as
    cheaply), ``"mean"`` or ``"trunk"``. :class:`PerLossAdapter` sets it.

    ``form="nonlinear"`` replaces the low-rank update by a small branch per loss,
    ``y = x Wᵀ + b + s · tanh(x A_kᵀ) B_kᵀ`` (two layers of rank r, ``B_k = 0`` at creation);
    it cannot be folded into ``W``.

    Args:
        base_layer: the layer to wrap; its parameters are kept as they are (same tensors).
        num_losses: K, the number of adapters.
        rank: r >= 1, the rank of each adapter (above ``min(in, out)`` the update ``B_k A_k``
            has rank ``min(in, out)``).
        alpha: scaling numerator; ``scaling = alpha / rank``.
        generator: CPU generator the A factors are drawn from (seeded by the caller, so the
            initialisation is identical on every DDP rank and independent of the global RNG).
        form: ``"linear"`` (low-rank update of ``W``) or ``"nonlinear"`` (a tanh branch).

    Example:
        >>> layer = AdapterLinear(nn.Linear(3, 5), num_losses=2, rank=2, alpha=2.0)
        >>> layer(torch.randn(4, 3)).shape
        torch.Size([4, 5])
    """

    def __init__(
        self,
        base_layer: nn.Linear,
        num_losses: int,
        rank: int,
        alpha: float,
        generator: torch.Generator | None = None,
        form: AdapterForm = "linear",
    ) -> None:
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"base_layer must be an nn.Linear, got {type(base_layer).__name__}")
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self.form: str = form
        self.active: Selection = None
        self.base_layer = base_layer
        self.num_losses = int(num_losses)
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.scaling = self.alpha / self.rank
        weight = base_layer.weight
        n_out, n_in = weight.shape
        a_factors, b_factors = [], []
        for _ in range(self.num_losses):
            a = torch.empty(self.rank, n_in)  # drawn on the CPU: same values on every device
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
            a_factors.append(nn.Parameter(a.to(device=weight.device, dtype=weight.dtype)))
            b = torch.zeros(n_out, self.rank, device=weight.device, dtype=weight.dtype)
            b_factors.append(nn.Parameter(b))
        self.lora_A = nn.ParameterList(a_factors)
        self.lora_B = nn.ParameterList(b_factors)

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    @property
    def weight(self) -> Tensor:
        """The base weight ``W`` ``[out, in]`` (without adapters; see :meth:`merged_weight`)."""
        return self.base_layer.weight

    @property
    def bias(self) -> Tensor | None:
        return self.base_layer.bias

    def adapter_parameters(self, k: int) -> list[nn.Parameter]:
        """``[A_k, B_k]``, the factors of adapter ``k``."""
        return [self.lora_A[k], self.lora_B[k]]

    def _factors(self) -> tuple[Tensor, Tensor]:
        a_cat = torch.cat(list(self.lora_A), dim=0)  # (K r, in)
        b_cat = torch.cat(list(self.lora_B), dim=1)  # (out, K r)
        return a_cat, b_cat

    def active_factors(self) -> tuple[Tensor, Tensor, float] | None:
        """``(A [m, in], B [out, m], coefficient)`` of the active adapters, None for none.

        Every adapter's factors concatenated (``m = K r``) for all K or ``"mean"`` (with the
        coefficient divided by K), adapter k's alone (``m = r``) under ``active = k``. The
        adapter term is ``coefficient · B A`` (linear form) or ``coefficient · tanh(x Aᵀ) Bᵀ``
        (nonlinear form; ``tanh`` acts per rank row, so the concatenation sums the branches).
        """
        active = self.active
        if active is None:
            a_cat, b_cat = self._factors()
            return a_cat, b_cat, self.scaling
        if active == "trunk":
            return None
        if active == "mean":
            a_cat, b_cat = self._factors()
            return a_cat, b_cat, self.scaling / self.num_losses
        if isinstance(active, int) and 0 <= active < self.num_losses:
            return self.lora_A[active], self.lora_B[active], self.scaling
        raise ValueError(
            f"active must be None, an adapter index in [0, {self.num_losses}), 'mean' or "
            f"'trunk', got {active!r}"
        )

    def effective_weight(self) -> Tensor:
        """``W + s · B A`` ``[out, in]`` of the active adapters (linear form; with autograd).

        The forward and the forward-mode jet (:mod:`lightning_pinn.operators`) both use it.

        Raises:
            ValueError: the adapters have the nonlinear form (no single weight).
        """
        if self.form != "linear":
            raise ValueError(
                "a nonlinear adapter branch has no effective weight: it cannot be folded into W"
            )
        selected = self.active_factors()
        if selected is None:
            return self.base_layer.weight
        a, b, coefficient = selected
        return self.base_layer.weight + coefficient * (b @ a)  # (out, in)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., in]`` -> ``[..., out]``: base output plus the active adapters."""
        if self.form == "linear":
            return F.linear(x, self.effective_weight(), self.base_layer.bias)
        y = F.linear(x, self.base_layer.weight, self.base_layer.bias)
        selected = self.active_factors()
        if selected is None:
            return y
        a, b, coefficient = selected
        return y + coefficient * F.linear(torch.tanh(F.linear(x, a)), b)  # (..., out)

    @torch.no_grad()
    def merged_weight(self) -> Tensor:
        """The effective weight of the active adapters (a new tensor, no autograd).

        With every adapter active (the default), ``W + scaling * Σ_k B_k A_k`` ``[out, in]``.

        Raises:
            ValueError: the adapters have the nonlinear form.
        """
        return self.effective_weight().clone()

    def extra_repr(self) -> str:
        form = "" if self.form == "linear" else f", form={self.form}"
        return f"num_losses={self.num_losses}, rank={self.rank}, alpha={self.alpha:g}{form}"
