"""Differential operators for PDE residuals.

Two families, both exact and differentiable in the network parameters (``create_graph``
semantics), so they can sit inside ``losses()``:

- on tensors ``u = f(x)`` (reverse mode, any network): :func:`gradient` (all first
  derivatives of a scalar field in one pass), :func:`jacobian` (one pass per component),
  :func:`hessian_diag`, :func:`mixed`, :func:`divergence`, :func:`laplacian`;
- on the network ``fn`` itself: :func:`jet` (value, first and second derivatives, Laplacian)
  and :func:`laplacian_fwd`, which push derivatives forward through the layers of a known trunk
  (plain or adapter-wrapped MLP, tanh/sigmoid/SiLU; extend :data:`ACTIVATIONS`) in one pass and
  fall back to reverse mode or ``vmap``-batched forward-over-reverse for any other network.
"""

from lightning_pinn.operators._forward import Jet, jet, laplacian_fwd
from lightning_pinn.operators._jet import ACTIVATIONS, jet_layers
from lightning_pinn.operators._reverse import (
    divergence,
    gradient,
    hessian_diag,
    jacobian,
    laplacian,
    mixed,
)

__all__ = [
    "ACTIVATIONS",
    "Jet",
    "divergence",
    "gradient",
    "hessian_diag",
    "jacobian",
    "jet",
    "jet_layers",
    "laplacian",
    "laplacian_fwd",
    "mixed",
]
