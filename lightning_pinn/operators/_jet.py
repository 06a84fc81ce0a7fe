"""Forward-mode jets: value, first and second derivatives pushed through a trunk's layers.

For a trunk made of affine layers (``nn.Linear``, adapter layers) and element-wise
activations, the value ``z`` ``[N, w]``, the first derivatives ``∂z/∂x_i`` ``[D, N, w]`` and
the requested second derivatives ``∂²z/∂x_i∂x_j`` ``[P, N, w]`` are propagated together in one
forward pass (Li et al. 2023, "Forward Laplacian"):

- affine ``z ↦ zWᵀ + b``: value ``zWᵀ + b``, every derivative ``·Wᵀ`` (the first layer's
  Jacobian is ``Wᵀ`` itself, shared by all points);
- activation ``σ``: value ``σ(z)``, ``∂_i ↦ σ'(z) ∂_i z``,
  ``∂_{ij} ↦ σ'(z) ∂_{ij} z + σ''(z) ∂_i z ∂_j z``.

The result is an ordinary autograd graph in the parameters: one backward pass gives the
parameter gradient of any loss built from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from lightning_pinn.adapters import AdapterLinear, PerLossAdapter
from lightning_pinn.networks import MLP

__all__ = ["ACTIVATIONS", "Derivatives", "jet_layers", "propagate"]

Derivatives = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]
"""``z -> (σ(z), σ'(z), σ''(z))`` for an element-wise activation."""


def _tanh(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    t = torch.tanh(z)
    s1 = 1 - t * t
    return t, s1, -2 * t * s1


def _sigmoid(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    s = torch.sigmoid(z)
    s1 = s * (1 - s)
    return s, s1, s1 * (1 - 2 * s)


def _silu(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    s = torch.sigmoid(z)
    ds = s * (1 - s)
    return z * s, s + z * ds, ds * (2 + z * (1 - 2 * s))


ACTIVATIONS: dict[type[nn.Module], Derivatives] = {
    nn.Tanh: _tanh,
    nn.Sigmoid: _sigmoid,
    nn.SiLU: _silu,
}
"""Element-wise activation types the fast path knows, with their derivatives. Register a
custom activation module (e.g. a sine) by adding ``ACTIVATIONS[Sine] = fn``."""


def _children(module: nn.Module) -> Iterator[nn.Module] | None:
    """The layers a container runs in order, or ``None`` for a module of unknown structure."""
    if type(module) is nn.Sequential:
        return iter(module)
    if isinstance(module, PerLossAdapter):
        return iter((module.trunk,))
    if type(module) is MLP and [name for name, _ in module.named_children()] == ["net"]:
        return iter((module.net,))  # MLP.forward is net(x) when nothing else is attached
    return None


def jet_layers(fn: object) -> list[nn.Module] | None:
    """The flat layer sequence of a trunk the fast path can propagate through, else ``None``.

    Supported: ``nn.Sequential``, :class:`~lightning_pinn.networks.MLP` and
    :class:`~lightning_pinn.PerLossAdapter` containers (nested freely) of ``nn.Linear``,
    :class:`~lightning_pinn.adapters.AdapterLinear` (linear or nonlinear form, whichever
    adapters are active), ``nn.Identity`` and the activations in :data:`ACTIVATIONS`.
    """
    if not isinstance(fn, nn.Module):
        return None
    if isinstance(fn, (nn.Linear, AdapterLinear, nn.Identity)) or type(fn) in ACTIVATIONS:
        return [fn]
    children = _children(fn)
    if children is None:
        return None
    layers: list[nn.Module] = []
    for child in children:
        flat = jet_layers(child)
        if flat is None:
            return None
        layers += flat
    return layers


def _affine(layer: nn.Module) -> tuple[Tensor, Tensor | None]:
    """Effective ``(W [out, in], b [out])`` of an affine layer, computed as its forward does.

    An adapter layer's weight is its own :meth:`~AdapterLinear.effective_weight` (the adapters
    active in the current per-loss scope, or all of them), so both paths share one formula.
    """
    if isinstance(layer, AdapterLinear):
        return layer.effective_weight(), layer.bias
    return layer.weight, layer.bias


def propagate(
    layers: list[nn.Module],
    x: Tensor,
    directions: list[int],
    pairs: list[tuple[int, int]],
    laplacian: list[int] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Push value, first and second derivatives of ``x`` through ``layers``.

    Args:
        layers: a flat list from :func:`jet_layers`.
        x: ``[N, d]`` points.
        directions: the D coordinates whose first derivatives are propagated.
        pairs: the P coordinate pairs ``(i, j)`` (both in ``directions``) whose second
            derivatives are propagated.
        laplacian: coordinates (in ``directions``) whose diagonal second derivatives are
            propagated as one summed row (one ``[N, w]`` block per layer, not one per dim).

    Returns:
        ``(value [N, m], first [D, N, m], second [S, N, m] or None when S = 0)`` with
        ``S = P (+ 1 for the Laplacian, the last row)``.
    """
    index = {j: k for k, j in enumerate(directions)}
    pair_idx = [(index[i], index[j]) for i, j in pairs]
    lap_idx = None if laplacian is None else [index[j] for j in laplacian]
    rows = len(pairs) + (lap_idx is not None)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)[directions]
    z = x
    first = eye.unsqueeze(1)  # (D, 1, d): shared by every point until the first activation
    second: Tensor | None = None  # zero until the first activation
    jet = (z, first, second)
    for layer in layers:
        if isinstance(layer, nn.Identity):
            continue
        if isinstance(layer, AdapterLinear) and layer.form != "linear":
            jet = _tanh_branch(layer, jet, pair_idx, lap_idx)
        elif isinstance(layer, (nn.Linear, AdapterLinear)):
            jet = _affine_jet(jet, *_affine(layer))
        else:
            jet = _activation_jet(ACTIVATIONS[type(layer)], jet, pair_idx, lap_idx)
    z, first, second = jet
    if second is None and rows:
        second = torch.zeros((rows, *z.shape), dtype=z.dtype, device=z.device)
    return z, first.expand(len(directions), *z.shape), second


Triple = tuple[Tensor, Tensor, Tensor | None]
"""``(value [N, w], first [D, ., w], second [S, ., w] or None while it is zero)``."""


def _affine_jet(jet: Triple, weight: Tensor, bias: Tensor | None) -> Triple:
    """``z ↦ zWᵀ + b``: every derivative ``·Wᵀ``."""
    z, first, second = jet
    return (
        nn.functional.linear(z, weight, bias),
        first @ weight.T,
        None if second is None else second @ weight.T,
    )


def _activation_jet(
    fn: Derivatives, jet: Triple, pair_idx: list[tuple[int, int]], lap_idx: list[int] | None
) -> Triple:
    """``z ↦ σ(z)``: ``∂_i ↦ σ' ∂_i z``, ``∂_{ij} ↦ σ' ∂_{ij} z + σ'' ∂_i z ∂_j z``."""
    z, first, second = jet
    value, s1, s2 = fn(z)
    if pair_idx or lap_idx is not None:
        curv = s2 * _products(first, pair_idx, lap_idx)  # (S, N, w)
        second = curv if second is None else torch.addcmul(curv, s1, second)
    return value, s1 * first, second  # first: (D, N, w)


def _tanh_branch(
    layer: AdapterLinear, jet: Triple, pair_idx: list[tuple[int, int]], lap_idx: list[int] | None
) -> Triple:
    """The nonlinear adapter layer ``y = z Wᵀ + b + c · tanh(z Aᵀ) Bᵀ`` and its derivatives.

    The branch is affine, tanh, affine, so its jet follows the trunk's own rules; ``A`` and
    ``B`` are the active adapters' factors (:meth:`AdapterLinear.active_factors`), so one pass
    serves the summed and per-loss designs.
    """
    base = _affine_jet(jet, layer.weight, layer.bias)
    factors = layer.active_factors()
    if factors is None:
        return base
    a, b, coefficient = factors
    hidden = _activation_jet(_tanh, _affine_jet(jet, a, None), pair_idx, lap_idx)
    branch = _affine_jet(hidden, coefficient * b, None)
    second = branch[2] if base[2] is None else base[2] + branch[2]
    return base[0] + branch[0], base[1] + branch[1], second


def _products(first: Tensor, pair_idx: list[tuple[int, int]], lap_idx: list[int] | None) -> Tensor:
    """``∂_a z ∂_b z`` per pair, then ``Σ_j (∂_j z)²`` over the Laplacian dims: ``[S, ., w]``."""
    terms = [first[a] * first[b] for a, b in pair_idx]
    if lap_idx is not None:
        if sorted(lap_idx) == list(range(len(first))):  # every direction, each once
            terms.append(first.square().sum(dim=0))
        else:
            terms.append(torch.stack([first[j].square() for j in lap_idx]).sum(dim=0))
    return torch.stack(terms)
