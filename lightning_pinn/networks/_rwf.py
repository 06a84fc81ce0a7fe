"""Random weight factorisation (RWF) of ``nn.Linear`` layers as a parametrisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["RWF", "WeightFactorization", "apply_rwf"]


def _check(mean: float, std: float) -> None:
    if not math.isfinite(mean):
        raise ValueError(f"RWF mean must be a finite number, got {mean!r}; the default is 1.0")
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"RWF std must be a finite number >= 0, got {std!r}; the default is 0.1")


class WeightFactorization(nn.Module):
    """Parametrisation ``W = diag(exp(s)) V`` of a weight ``[out, in]``.

    Registered on a layer's ``weight`` with ``torch.nn.utils.parametrize``, it replaces the
    parameter by two trainable tensors, ``original0 = s`` ``[out]`` and ``original1 = V``
    ``[out, in]``. At registration (:meth:`right_inverse`) ``s ~ N(mean, std²)`` is drawn from
    the global RNG and ``V = W / exp(s)``, so the layer computes the same function up to
    rounding; only the gradient flow changes.

    Reference:
        Wang, Wang, Seidman & Perdikaris (2022), "Random weight factorization improves the
        training of continuous neural representations", arXiv:2210.01274.

    Args:
        mean: mean of the log-scales ``s`` (jaxpi's default 1.0).
        std: standard deviation of ``s`` (jaxpi's default 0.1).

    Raises:
        ValueError: a non-finite ``mean`` or a negative or non-finite ``std``.
    """

    def __init__(self, mean: float = 1.0, std: float = 0.1) -> None:
        super().__init__()
        _check(mean, std)
        self.mean = float(mean)
        self.std = float(std)

    def forward(self, s: Tensor, v: Tensor) -> Tensor:
        """``[out]``, ``[out, in]`` -> ``[out, in]``: ``exp(s)[:, None] * V``."""
        return torch.exp(s).unsqueeze(-1) * v

    @torch.no_grad()
    def right_inverse(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        """Factor ``weight`` ``[out, in]`` into a freshly drawn ``s`` and ``V = W / exp(s)``."""
        if weight.dim() != 2:
            raise ValueError(
                f"WeightFactorization expects a 2-D weight [out, in], got shape "
                f"{tuple(weight.shape)}; register it on nn.Linear weights"
            )
        s = torch.randn(weight.shape[0], dtype=weight.dtype, device=weight.device)
        s = s * self.std + self.mean  # (out,)
        return s, weight / torch.exp(s).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"mean={self.mean:g}, std={self.std:g}"


def apply_rwf(module: nn.Module, mean: float = 1.0, std: float = 0.1) -> nn.Module:
    """Factorise the weight of every ``nn.Linear`` in ``module`` in place (RWF).

    Each layer stays an ``nn.Linear`` (``isinstance`` holds, so adapters still find it); its
    weight becomes ``diag(exp(s)) V`` (:class:`WeightFactorization`) and its trainable
    parameters ``parametrizations.weight.original0`` (``s``) and ``...original1`` (``V``).
    The function is unchanged up to rounding. Layers are visited in ``modules()`` order, one
    draw of ``s`` each from the global RNG.

    Reference:
        Wang, Wang, Seidman & Perdikaris (2022), "Random weight factorization improves the
        training of continuous neural representations", arXiv:2210.01274.

    Args:
        module: any module (or an ``nn.Linear`` itself).
        mean: mean of the log-scales ``s``.
        std: standard deviation of ``s``.

    Returns:
        ``module`` itself.

    Raises:
        ValueError: bad ``mean``/``std``, a layer whose weight is already parametrised, or no
            ``nn.Linear`` in ``module``.

    Example:
        >>> net = apply_rwf(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)))
        >>> isinstance(net[0], nn.Linear), sorted(n for n, _ in net[0].named_parameters())
        (True, ['bias', 'parametrizations.weight.original0', 'parametrizations.weight.original1'])
    """
    _check(mean, std)
    layers = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not layers:
        types = sorted({type(m).__name__ for m in module.modules()})
        raise ValueError(
            f"apply_rwf found no nn.Linear layer in a module of types {types}; RWF "
            "factorises nn.Linear weights only"
        )
    done = [n or "<root>" for n, m in layers if parametrize.is_parametrized(m, "weight")]
    if done:
        raise ValueError(
            f"the weights of layers {done} are already parametrised; apply RWF once, to a "
            "plain trunk"
        )
    for _, layer in layers:
        parametrize.register_parametrization(layer, "weight", WeightFactorization(mean, std))
    return module


@dataclass(frozen=True)
class RWF:
    """Options of random weight factorisation, for a trunk's ``rwf`` argument.

    ``MLP(2, 1, rwf=RWF(mean=1.0, std=0.1))`` factorises every layer after initialisation;
    in YAML, ``rwf: {mean: 1.0, std: 0.1}``. See :func:`apply_rwf`.

    Reference:
        Wang, Wang, Seidman & Perdikaris (2022), arXiv:2210.01274.

    Args:
        mean: mean of the log-scales ``s`` (default 1.0).
        std: standard deviation of ``s`` (default 0.1).

    Raises:
        ValueError: a non-finite ``mean`` or a negative or non-finite ``std``.
    """

    mean: float = 1.0
    std: float = 0.1

    def __post_init__(self) -> None:
        _check(self.mean, self.std)

    def apply(self, module: nn.Module) -> nn.Module:
        """:func:`apply_rwf` with these options."""
        return apply_rwf(module, self.mean, self.std)
