"""Per-loss low-rank adapters for any trunk (DESIGN §5).

``PerLossAdapter`` injects K rank-r adapters (one per loss) into a trunk's ``nn.Linear`` layers;
``AdapterLinear`` is the wrapper layer and ``inject_adapters`` the function that places it.
Two designs: ``mode="summed"`` (one function, every adapter active) and ``mode="per_loss"``
(loss k through the trunk and adapter k only).
"""

from lightning_pinn.adapters._inject import Target, inject_adapters
from lightning_pinn.adapters._layer import AdapterForm, AdapterLinear, Selection
from lightning_pinn.adapters._wrapper import (
    MODES,
    PREDICTIONS,
    Mode,
    PerLossAdapter,
    Prediction,
    check_predict_with,
)

__all__ = [
    "MODES",
    "PREDICTIONS",
    "AdapterForm",
    "AdapterLinear",
    "Mode",
    "PerLossAdapter",
    "Prediction",
    "Selection",
    "Target",
    "check_predict_with",
    "inject_adapters",
]
