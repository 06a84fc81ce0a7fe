"""Property assertions written once and run over every reweighting rule and strategy.

A *step function* maps ``(jac [K, P], losses [K])`` to ``(update [P], weights [K])``; a
*factory* builds a fresh one (rules and strategies are stateful). Each assertion feeds the same
short sequence of inputs to fresh step functions and compares the last outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

StepFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
Factory = Callable[[], StepFn]
Inputs = Sequence[tuple[Tensor, Tensor]]

HUGE = 1e12


def run(factory: Factory, inputs: Inputs) -> tuple[Tensor, Tensor]:
    """Feed ``inputs`` to a fresh step function; return its last ``(update, weights)``."""
    step = factory()
    out = None
    for jac, losses in inputs:
        out = step(jac, losses)
    assert out is not None
    return out


def sequence(k: int, p: int, steps: int = 3, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    """A few random ``(jac, losses)`` pairs with different row norms (a generic input)."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, 2, k)[:, None]
    out = []
    for _ in range(steps):
        jac = torch.randn(k, p, generator=gen) * scales
        losses = torch.rand(k, generator=gen) + 0.1
        out.append((jac, losses))
    return out


def degenerate_inputs(k: int, p: int) -> dict[str, list[tuple[Tensor, Tensor]]]:
    """Zero, huge and rank-deficient gradients (and matching losses)."""
    gen = torch.Generator().manual_seed(1)
    row = torch.randn(1, p, generator=gen)
    coeffs = torch.linspace(0.5, 2.0, k)[:, None]
    mixed = torch.randn(k, p, generator=gen)
    mixed[0] = 0.0
    ones = torch.ones(k)
    return {
        "zero": [(torch.zeros(k, p), ones)] * 3,
        "huge": [(torch.randn(k, p, generator=gen) * HUGE, ones * HUGE)] * 3,
        "rank_deficient": [(coeffs * row, ones)] * 3,
        "one_zero_row": [(mixed, ones)] * 3,
    }


def assert_finite_shape(factory: Factory, k: int, p: int, positive: bool = True) -> None:
    """Finite update ``[P]`` and finite (positive) weights ``[K]`` on degenerate inputs."""
    for label, inputs in degenerate_inputs(k, p).items():
        update, weights = run(factory, inputs)
        assert update.shape == (p,), (label, update.shape)
        assert weights.shape == (k,), (label, weights.shape)
        assert torch.isfinite(update).all(), (label, update)
        assert torch.isfinite(weights).all(), (label, weights)
        if positive:
            assert (weights > 0).all(), (label, weights)


def assert_permutation_equivariant(
    factory: Factory, inputs: Inputs, perm: Sequence[int], atol: float = 1e-5, rtol: float = 1e-4
) -> None:
    """Permuting the losses permutes the weights and leaves the update unchanged."""
    idx = torch.as_tensor(perm)
    update, weights = run(factory, inputs)
    p_update, p_weights = run(factory, [(j[idx], v[idx]) for j, v in inputs])
    torch.testing.assert_close(p_weights, weights[idx], rtol=rtol, atol=atol)
    torch.testing.assert_close(p_update, update, rtol=rtol, atol=atol * update.abs().max())


def assert_scale_invariant(
    factory: Factory, inputs: Inputs, scale: float, of: str = "gradients", rtol: float = 1e-4
) -> None:
    """Weights unchanged and update scaled by ``scale`` when all gradients (or losses) scale."""
    update, weights = run(factory, inputs)
    if of == "gradients":
        scaled = [(j * scale, v) for j, v in inputs]
        factor = scale
    else:
        scaled = [(j, v * scale) for j, v in inputs]
        factor = 1.0
    s_update, s_weights = run(factory, scaled)
    torch.testing.assert_close(s_weights, weights, rtol=rtol, atol=1e-6)
    torch.testing.assert_close(
        s_update, update * factor, rtol=rtol, atol=1e-6 * float(update.abs().max()) * factor
    )
