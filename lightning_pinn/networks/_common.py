"""Helpers shared by the trunks: size checks, embedding sizes, initialisation."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from lightning_pinn.networks._embeddings import Embedding

__all__ = ["ACTIVATION_NAMES", "activation_factory", "check_sizes", "embedded_dim", "xavier_init"]

ACTIVATION_NAMES: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}
"""Activations a trunk accepts by name (``activation="silu"``); any factory works too."""


def activation_factory(name: str, activation: object) -> Callable[[], nn.Module]:
    """``activation`` as a factory of ``nn.Module`` s: a factory (``nn.Tanh``) as given, or
    one of :data:`ACTIVATION_NAMES` by name.

    Raises:
        ValueError: an unknown name.
        TypeError: neither a name nor a factory that builds an ``nn.Module``.
    """
    valid = ", ".join(ACTIVATION_NAMES)
    if isinstance(activation, str):
        factory = ACTIVATION_NAMES.get(activation.lower())
        if factory is None:
            raise ValueError(
                f"{name} activation {activation!r} is not known; use one of {valid}, or a "
                "factory such as torch.nn.Tanh"
            )
        return factory
    if isinstance(activation, nn.Module) or not callable(activation):
        raise TypeError(
            f"{name} activation must be a factory that builds an nn.Module (e.g. torch.nn.Tanh, "
            f"not torch.nn.Tanh()) or one of {valid}, got {activation!r}"
        )
    return activation


def check_sizes(name: str, **sizes: int) -> None:
    """Raise a ``ValueError`` naming every size if one is not an integer >= 1."""
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes.values()):
        listed = ", ".join(f"{k}={v!r}" for k, v in sizes.items())
        raise ValueError(f"{name} sizes must be integers >= 1, got {listed}")


def embedded_dim(name: str, in_dim: int, embedding: Embedding | None) -> int:
    """The width the first layer sees: ``in_dim``, or the embedding's ``out_dim``."""
    if embedding is None:
        return in_dim
    if not isinstance(embedding, Embedding):
        raise TypeError(
            f"{name} embedding must be a lightning_pinn.networks.Embedding (FourierFeatures, "
            f"PeriodicEmbedding) or None, got {type(embedding).__name__}"
        )
    if embedding.in_dim != in_dim:
        raise ValueError(
            f"{name} has in_dim={in_dim} but its embedding {type(embedding).__name__} takes "
            f"in_dim={embedding.in_dim}; build the embedding with in_dim={in_dim}"
        )
    return embedding.out_dim


def xavier_init(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases for every ``nn.Linear``, in ``modules()`` order."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
