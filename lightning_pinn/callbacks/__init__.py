"""Lightning callbacks of lightning_pinn."""

from lightning_pinn.callbacks._conflict import ConflictCallback

__all__ = ["ConflictCallback"]
