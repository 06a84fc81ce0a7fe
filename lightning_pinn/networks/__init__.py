"""Trunks (networks ``[N, d] -> [N, m]``), input embeddings and random weight factorisation.

- :class:`MLP`: the default tanh multilayer perceptron;
- :class:`ModifiedMLP`: two encoders gate every hidden layer (Wang, Teng & Perdikaris 2021);
- :class:`PirateNet`: gated residual blocks with zero-initialised skips (Wang et al. 2024);
- :class:`FourierFeatures`, :class:`PeriodicEmbedding`: input embeddings, passed to a trunk's
  ``embedding`` argument; :class:`EmbeddingChain` applies several in turn;
- :func:`apply_rwf`, :class:`RWF`: random weight factorisation of every ``nn.Linear``
  (Wang et al. 2022), as a ``torch.nn.utils.parametrize`` parametrisation, or a trunk's
  ``rwf`` argument.

Every trunk is built from ``nn.Linear`` layers, so ``PerLossAdapter`` wraps it and
``merged()`` folds it, and every one is constructible by ``class_path`` from YAML.
"""

from lightning_pinn.networks._embeddings import (
    Embedding,
    EmbeddingChain,
    FourierFeatures,
    PeriodicEmbedding,
)
from lightning_pinn.networks._mlp import MLP
from lightning_pinn.networks._modified import ModifiedMLP
from lightning_pinn.networks._pirate import PirateBlock, PirateNet
from lightning_pinn.networks._rwf import RWF, WeightFactorization, apply_rwf

__all__ = [
    "MLP",
    "RWF",
    "Embedding",
    "EmbeddingChain",
    "FourierFeatures",
    "ModifiedMLP",
    "PeriodicEmbedding",
    "PirateBlock",
    "PirateNet",
    "WeightFactorization",
    "apply_rwf",
]
