"""Input embeddings placed in front of a trunk: random Fourier features, periodic features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Embedding", "EmbeddingChain", "FourierFeatures", "PeriodicEmbedding"]


def _positive_int(name: str, value: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}; {hint}")
    return value


class Embedding(nn.Module):
    """Base class of input embeddings ``[N, in_dim] -> [N, out_dim]``.

    A trunk's ``embedding`` argument takes any subclass; the trunk checks ``in_dim`` against
    its own and sizes its first layer from ``out_dim``. Embeddings hold no trainable
    parameters (their random matrices are buffers), so they add nothing to θ_s.

    Attributes:
        in_dim: input dimension d.
        out_dim: output dimension.
    """

    in_dim: int
    out_dim: int


def _scales(sigma: float | Sequence[float], in_dim: int) -> tuple[float, ...]:
    """``sigma`` as ``in_dim`` checked scales (a scalar is repeated)."""
    hint = "try sigma=1.0 (larger values fit higher frequencies)"
    if isinstance(sigma, Sequence) and not isinstance(sigma, str):
        if len(sigma) != in_dim:
            raise ValueError(
                f"sigma has {len(sigma)} scales but the embedding has in_dim={in_dim} "
                f"coordinates; give one scale per coordinate or a single number ({hint})"
            )
        values = tuple(sigma)
    else:
        values = (sigma,) * in_dim
    for value in values:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value > 0)
        ):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}; {hint}")
    return tuple(float(v) for v in values)


class FourierFeatures(Embedding):
    """Random Fourier features ``γ(x) = [cos(x B), sin(x B)]``, ``B ~ N(0, σ²)`` ``[d, m/2]``.

    ``B`` is drawn once from the global RNG and kept as a buffer (saved in the state dict,
    never trained). The convention is jaxpi's (no 2π inside): Tancik et al.'s scale
    ``σ_T`` corresponds to ``sigma = 2π σ_T``. A larger ``sigma`` lets the trunk fit higher
    frequencies. ``sigma`` may also give one scale per coordinate (row ``j`` of ``B`` is drawn
    with ``σ_j``): the spatio-temporal scales of Wang, Wang & Perdikaris (2021) for a solution
    that oscillates faster in time than in space. The same draws are made either way, so a
    sequence of equal scales gives the same ``B`` as the scalar.

    Reference:
        Tancik et al. (2020), "Fourier features let networks learn high frequency functions
        in low dimensional domains", NeurIPS; Wang, Wang & Perdikaris (2021), "On the
        eigenvector bias of Fourier feature networks", CMAME 384.

    Args:
        in_dim: input dimension d.
        out_dim: number of features m (even: m/2 cosines and m/2 sines).
        sigma: standard deviation σ > 0 of the entries of ``B``; or a sequence of ``in_dim``
            such scales, one per input coordinate.

    Raises:
        ValueError: a ``sigma`` that is not finite and > 0 (or a sequence whose length is not
            ``in_dim``), an odd or non-positive ``out_dim``, or ``in_dim < 1``.

    Example:
        >>> emb = FourierFeatures(2, out_dim=128, sigma=1.0)
        >>> emb(torch.zeros(5, 2)).shape
        torch.Size([5, 128])
    """

    def __init__(
        self, in_dim: int, out_dim: int = 256, sigma: float | Sequence[float] = 1.0
    ) -> None:
        super().__init__()
        _positive_int("in_dim", in_dim, "pass the number of input coordinates")
        if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 2 or out_dim % 2:
            raise ValueError(
                f"out_dim must be an even integer >= 2 (cosines and sines), got {out_dim!r}; "
                "e.g. out_dim=256"
            )
        scales = _scales(sigma, in_dim)
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.sigma: float | tuple[float, ...] = scales[0] if len(set(scales)) == 1 else scales
        draws = torch.randn(in_dim, out_dim // 2)
        self.register_buffer("B", draws * torch.tensor(scales, dtype=draws.dtype).unsqueeze(1))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim]`` -> ``[N, out_dim]``."""
        z = x @ self.B  # (N, m/2)
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)

    def extra_repr(self) -> str:
        sigma = self.sigma if isinstance(self.sigma, tuple) else f"{self.sigma:g}"
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, sigma={sigma}"


class PeriodicEmbedding(Embedding):
    """Exact periodic features for coordinates with periodic boundary conditions.

    For each periodic coordinate ``x_j`` with period ``L_j`` and ``k = 1..harmonics`` the
    features ``cos(2π k x_j / L_j)`` and ``sin(2π k x_j / L_j)``; every other coordinate is
    passed through unchanged. Output order: the passed-through coordinates (in input order),
    then the cosines, then the sines (periodic coordinate major, harmonic minor). Any trunk
    behind it is then exactly ``L_j``-periodic in ``x_j``, with all derivatives, so the
    periodic boundary loss vanishes identically.

    Reference:
        Dong & Ni (2021), "A method for representing periodic functions and enforcing exactly
        periodic boundary conditions with deep neural networks", J. Comput. Phys. 435;
        jaxpi's ``PeriodEmbs`` (Wang et al. 2023, "An expert's guide to training PINNs").

    Args:
        in_dim: input dimension d.
        dims: indices of the periodic coordinates (distinct, in ``[0, d)``).
        periods: one period ``L_j > 0`` per entry of ``dims``.
        harmonics: number of harmonics ``k = 1..harmonics`` per periodic coordinate.

    Raises:
        ValueError: empty, repeated or out-of-range ``dims``; ``periods`` of another length
            or not positive; ``harmonics < 1``.

    Example:
        >>> emb = PeriodicEmbedding(2, dims=[1], periods=[2.0])  # (t, x), x is 2-periodic
        >>> emb(torch.zeros(5, 2)).shape  # t, cos(πx), sin(πx)
        torch.Size([5, 3])
    """

    def __init__(
        self,
        in_dim: int,
        dims: Sequence[int] = (0,),
        periods: Sequence[float] = (1.0,),
        harmonics: int = 1,
    ) -> None:
        super().__init__()
        _positive_int("in_dim", in_dim, "pass the number of input coordinates")
        _positive_int("harmonics", harmonics, "harmonics=1 gives cos and sin of 2πx/L")
        dims, periods = list(dims), [float(p) for p in periods]
        if not dims or len(set(dims)) != len(dims) or any(not 0 <= j < in_dim for j in dims):
            raise ValueError(
                f"dims must be distinct indices in [0, {in_dim}), got {dims}; name the "
                "periodic coordinates, e.g. dims=[1] for x in (t, x)"
            )
        if len(periods) != len(dims) or any(not (math.isfinite(p) and p > 0) for p in periods):
            raise ValueError(
                f"periods must hold one finite period > 0 per entry of dims={dims}, got {periods}"
            )
        self.in_dim = in_dim
        self.dims = dims
        self.periods = periods
        self.harmonics = harmonics
        self.passthrough = [j for j in range(in_dim) if j not in set(dims)]
        self.out_dim = len(self.passthrough) + 2 * harmonics * len(dims)
        k = torch.arange(1, harmonics + 1, dtype=torch.float64)
        freqs = 2 * math.pi * k / torch.tensor(periods, dtype=torch.float64).unsqueeze(1)
        self.register_buffer("freqs", freqs.to(torch.get_default_dtype()))  # (P, H)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim]`` -> ``[N, out_dim]``."""
        z = (x[:, self.dims].unsqueeze(-1) * self.freqs).flatten(1)  # (N, P H)
        return torch.cat([x[:, self.passthrough], torch.cos(z), torch.sin(z)], dim=-1)

    def extra_repr(self) -> str:
        return (
            f"in_dim={self.in_dim}, dims={self.dims}, periods={self.periods}, "
            f"harmonics={self.harmonics}"
        )


class EmbeddingChain(Embedding):
    """Embeddings applied one after the other: ``e_n(… e_2(e_1(x)))``.

    jaxpi's recipes put an exact periodic embedding in front of random Fourier features (e.g.
    the advection and Allen–Cahn examples of Wang et al. 2023): the periodic features make the
    trunk exactly periodic, the Fourier features then let it fit high frequencies. Each
    embedding's ``in_dim`` must equal the previous one's ``out_dim``. In a recipe's YAML the
    ``in_dim`` of every link may be left out: the recipe loader fills them in along the chain
    (the trunk's ``in_dim`` for the first link).

    Args:
        embeddings: the links, at least one, first applied first.

    Raises:
        ValueError: no link, a link that is not an :class:`Embedding`, or a link whose
            ``in_dim`` differs from the previous link's ``out_dim``.

    Example:
        >>> chain = EmbeddingChain([
        ...     PeriodicEmbedding(2, dims=[0], periods=[2.0]),  # (x, t) -> (t, cos πx, sin πx)
        ...     FourierFeatures(3, out_dim=64, sigma=2.0),
        ... ])
        >>> chain(torch.zeros(5, 2)).shape
        torch.Size([5, 64])
    """

    def __init__(self, embeddings: Sequence[Embedding]) -> None:
        super().__init__()
        links = list(embeddings) if isinstance(embeddings, Sequence) else []
        if not links:
            raise ValueError(
                "EmbeddingChain needs at least one embedding, e.g. "
                "[PeriodicEmbedding(...), FourierFeatures(...)]"
            )
        for i, link in enumerate(links):
            if not isinstance(link, Embedding):
                raise ValueError(
                    f"EmbeddingChain link {i} must be a lightning_pinn.networks.Embedding, got "
                    f"{type(link).__name__}"
                )
            if i and link.in_dim != links[i - 1].out_dim:
                raise ValueError(
                    f"EmbeddingChain link {i} ({type(link).__name__}) takes in_dim="
                    f"{link.in_dim} but link {i - 1} ({type(links[i - 1]).__name__}) gives "
                    f"out_dim={links[i - 1].out_dim}; build link {i} with "
                    f"in_dim={links[i - 1].out_dim}"
                )
        self.links = nn.ModuleList(links)
        self.in_dim = links[0].in_dim
        self.out_dim = links[-1].out_dim

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_dim]`` -> ``[N, out_dim]``."""
        for link in self.links:
            x = link(x)
        return x
