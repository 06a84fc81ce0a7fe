"""Optimisation phases: the first-order optimizer and its learning-rate schedule, and an
L-BFGS phase that takes over after N steps in the same run (docs/api.md, "Optimiser phases").

Example:
    >>> from lightning_pinn.optim import LBFGSPhase, WarmupExponential
    >>> schedule = WarmupExponential(warmup_steps=200, decay_rate=0.9, decay_steps=1000)
    >>> lbfgs = LBFGSPhase(after=2000, max_iter=5)
"""

from lightning_pinn.optim._first_order import FirstOrderName, build_first_order, first_order_names
from lightning_pinn.optim._lbfgs import LBFGSPhase, LBFGSRun
from lightning_pinn.optim._schedule import WarmupExponential, WarmupExponentialLR

__all__ = [
    "FirstOrderName",
    "LBFGSPhase",
    "LBFGSRun",
    "WarmupExponential",
    "WarmupExponentialLR",
    "build_first_order",
    "first_order_names",
]
