"""Per-loss low-rank adapters for any trunk (DESIGN §5).

``PerLossAdapter`` injects K rank-r adapters (one per loss) into a trunk's ``nn.Linear`` layers;
``AdapterLinear`` is the wrapper layer and ``inject_adapters`` the function that places it.
"""

from lightning_pinn.adapters._inject import Target, inject_adapters
from lightning_pinn.adapters._layer import AdapterLinear
from lightning_pinn.adapters._wrapper import PerLossAdapter

__all__ = ["AdapterLinear", "PerLossAdapter", "Target", "inject_adapters"]
