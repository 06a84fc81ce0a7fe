"""Every trunk in its plain, embedded and factorised forms, for the property tests."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from lightning_pinn.networks import (
    MLP,
    RWF,
    EmbeddingChain,
    FourierFeatures,
    ModifiedMLP,
    PeriodicEmbedding,
    PirateNet,
    apply_rwf,
)

D_IN, D_OUT = 3, 2

TRUNKS: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: MLP(D_IN, D_OUT, width=16, depth=3),
    "mlp-fourier": lambda: MLP(D_IN, D_OUT, 16, 2, embedding=FourierFeatures(D_IN, 32, 2.0)),
    "mlp-periodic": lambda: MLP(
        D_IN, D_OUT, 16, 2, embedding=PeriodicEmbedding(D_IN, [1, 2], [2.0, 1.0], harmonics=2)
    ),
    "mlp-rwf": lambda: MLP(D_IN, D_OUT, width=16, depth=3, rwf=RWF()),
    "modified": lambda: ModifiedMLP(D_IN, D_OUT, width=16, depth=3),
    "modified-fourier-rwf": lambda: ModifiedMLP(
        D_IN, D_OUT, 16, 3, embedding=FourierFeatures(D_IN, 32, 1.0), rwf=RWF(0.5, 0.1)
    ),
    "modified-periodic-fourier": lambda: ModifiedMLP(
        D_IN,
        D_OUT,
        16,
        2,
        embedding=EmbeddingChain(
            [PeriodicEmbedding(D_IN, [0], [2.0]), FourierFeatures(D_IN + 1, 32, 1.0)]
        ),
    ),
    "pirate": lambda: PirateNet(D_IN, D_OUT, 16, 2, embedding=FourierFeatures(D_IN, 16, 1.0)),
    "pirate-rwf": lambda: PirateNet(D_IN, D_OUT, 16, 2, nn.Tanh, FourierFeatures(D_IN, 16), RWF()),
    "sequential-apply_rwf": lambda: apply_rwf(
        nn.Sequential(FourierFeatures(D_IN, 16), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))
    ),
}
