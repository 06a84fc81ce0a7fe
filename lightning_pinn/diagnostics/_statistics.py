"""Per-step conflict statistics of the per-loss gradients ``J`` (docs/concepts.md).

Every function here is pure, works on the tensors' device and never synchronises with the
host (no ``.item()``), so it can run inside the training step.

Zero-gradient rows (a loss that does not move the shared parameters at this step) are defined,
never NaN: a zero row has cosine 0 with every row, itself included (it neither conflicts nor
agrees), norm 0, and update cosine 0; the imbalance floors norms at ``floor`` so it stays
finite (a zero row next to a unit-norm row gives ``log10(1 / floor)``, 12 decades by default).
A zero update ``d`` likewise gives update cosines 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_pinn.gradients import row_norms

__all__ = [
    "DEFAULT_FLOOR",
    "alignment_from_cosines",
    "alignment_score",
    "conflict_indicator",
    "gram_statistics",
    "imbalance",
    "loss_norms",
    "pair_indices",
    "pair_names",
    "pairwise_cosines",
    "upper_pairs",
    "update_cosines",
]

DEFAULT_FLOOR = 1e-12
"""Norm floor of :func:`imbalance` (a zero norm counts as this)."""


def _check_jacobian(jac: Tensor) -> None:
    if not isinstance(jac, Tensor) or jac.ndim != 2:
        shape = tuple(jac.shape) if isinstance(jac, Tensor) else type(jac).__name__
        raise ValueError(f"jac must be a [K, P] tensor, got {shape}")


def _scaled_gram(rows: Tensor) -> Tensor:
    """Gram matrix ``[R, R]`` of the rows after scaling each row by its max-abs entry.

    Scaling keeps the products from overflowing; a non-zero scaled row has squared norm
    >= 1, a zero row has 0. Only cosines are read from it (norms: :func:`row_norms`).
    """
    rows = rows.float()
    scale = rows.abs().amax(dim=1)  # (R,)
    scaled = rows / scale.clamp_min(torch.finfo(rows.dtype).tiny)[:, None]  # (R, P)
    return scaled @ scaled.T  # (R, R)


def _cosines_from_gram(gram: Tensor) -> Tensor:
    diag = gram.diagonal()  # (R,)
    den = (diag[:, None] * diag[None, :]).sqrt()  # (R, R); 0 iff a row is zero
    return (gram / den.clamp_min(torch.finfo(gram.dtype).tiny)).clamp(-1.0, 1.0)


def gram_statistics(jac: Tensor, update: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Cosines, norms and update cosines from one Gram matrix of ``[J; d]``.

    One ``[K+1, P] x [P, K+1]`` product gives everything; this is what the callback calls
    every step.

    Args:
        jac: per-loss gradients ``[K, P]``.
        update: the applied shared update ``d`` ``[P]``; ``None`` gives update cosines 0.

    Returns:
        ``(cos [K, K], norms [K], update_cos [K])``.
    """
    _check_jacobian(jac)
    k = jac.shape[0]
    rows = jac if update is None else torch.cat([jac, update.reshape(1, -1).to(jac)])
    gram = _scaled_gram(rows)  # (R, R)
    cos = _cosines_from_gram(gram)  # (R, R)
    norms = row_norms(jac.float())  # (K,), the norms logged and reweighted on
    if update is None:
        return cos, norms, torch.zeros_like(norms)
    return cos[:k, :k], norms, cos[:k, k]


def pairwise_cosines(jac: Tensor) -> Tensor:
    """Pairwise cosines ``c_ij = <g_i, g_j> / (‖g_i‖ ‖g_j‖)``.

    Args:
        jac: per-loss gradients ``[K, P]``.

    Returns:
        ``[K, K]`` symmetric matrix in ``[-1, 1]``; diagonal 1 for non-zero rows, and row and
        column 0 for a zero row.

    Example:
        >>> pairwise_cosines(torch.tensor([[1.0, 0.0], [-2.0, 0.0]]))[0, 1]
        tensor(-1.)
    """
    return gram_statistics(jac)[0]


_PAIR_CACHE: dict[tuple[int, str], Tensor] = {}


def pair_indices(num_losses: int, device: torch.device | str | None = None) -> Tensor:
    """Upper-triangle index pairs ``(i, j)``, ``i < j``, in row-major order.

    Cached per ``(K, device)``, so the per-step path allocates and copies nothing.

    Returns:
        ``[2, K(K-1)/2]`` long tensor.
    """
    key = (num_losses, str(torch.device(device) if device is not None else "cpu"))
    if key not in _PAIR_CACHE:
        _PAIR_CACHE[key] = torch.triu_indices(num_losses, num_losses, offset=1, device=device)
    return _PAIR_CACHE[key]


def upper_pairs(matrix: Tensor) -> Tensor:
    """The strict upper triangle of a ``[..., K, K]`` matrix as ``[..., K(K-1)/2]``."""
    i, j = pair_indices(matrix.shape[-1], matrix.device)
    return matrix[..., i, j]


def pair_names(loss_names: Sequence[str]) -> list[str]:
    """``"<a>-<b>"`` for each pair, in the order of :func:`upper_pairs`."""
    names = list(loss_names)
    i, j = pair_indices(len(names)).tolist()
    return [f"{names[a]}-{names[b]}" for a, b in zip(i, j, strict=True)]


def conflict_indicator(cos: Tensor) -> Tensor:
    """``1[c_ij < 0]``: where a pair conflicts (a zero row, cosine 0, never conflicts).

    Args:
        cos: cosines of any shape (``[K, K]`` or pair vectors ``[..., npairs]``).

    Returns:
        A bool tensor of the same shape.
    """
    return cos < 0


def loss_norms(jac: Tensor) -> Tensor:
    """Per-loss gradient norms ``n_k = ‖g_k‖``, overflow-safe (:func:`row_norms`).

    Args:
        jac: per-loss gradients ``[K, P]``.

    Returns:
        ``[K]`` norms.
    """
    _check_jacobian(jac)
    return row_norms(jac.float())


def imbalance(norms: Tensor, floor: float = DEFAULT_FLOOR) -> Tensor:
    """Magnitude imbalance ``I = log10(max_k n_k / min_k n_k)`` in decades.

    Args:
        norms: per-loss norms ``[..., K]``.
        floor: norms below it count as ``floor``, so zero norms give a finite value.

    Returns:
        ``[...]`` imbalance (>= 0). Example: norms ``[1, 100]`` give ``2.0``.
    """
    if floor <= 0:
        raise ValueError(f"floor must be > 0, got {floor!r}")
    clamped = norms.clamp_min(floor)
    return torch.log10(clamped.amax(dim=-1) / clamped.amin(dim=-1))


def update_cosines(jac: Tensor, update: Tensor) -> Tensor:
    """Cosine of each loss gradient to the applied update, ``a_k = cos(g_k, d)``.

    ``a_k < 0`` means the step increases ``L_k`` to first order.

    Args:
        jac: per-loss gradients ``[K, P]``.
        update: the applied shared update ``d`` ``[P]``.

    Returns:
        ``[K]`` cosines (0 for a zero row or a zero update).
    """
    if update.numel() != jac.shape[-1]:
        raise ValueError(f"update has {update.numel()} entries but jac has {jac.shape[-1]} columns")
    return gram_statistics(jac, update)[2]


def alignment_from_cosines(cosines: Tensor, norms: Tensor) -> Tensor:
    r"""Gradient alignment score from pair cosines and norms (no pass over ``J``).

    ``A = 2 ‖(1/m) Σ_k g_k/‖g_k‖‖² − 1`` over the ``m`` non-zero rows (Wang et al. 2025,
    "Gradient alignment in physics-informed neural networks"); expanding the square gives
    ``A = 2 (m + 2 Σ_{i<j} c_ij) / m² − 1``, read from the recorded upper-triangle cosines (a
    zero row has cosine 0 with every row, so it only leaves ``m``). ``A`` is 1 when every
    non-zero row points the same way, ``c_12`` for two rows, and 0 when no row is non-zero.

    Args:
        cosines: pair cosines ``[..., K(K-1)/2]`` (:func:`upper_pairs` order).
        norms: per-loss norms ``[..., K]`` (a row counts when its norm is > 0).

    Returns:
        ``[...]`` scores in ``[-1, 1]``.

    Example:
        >>> alignment_from_cosines(torch.tensor([0.5]), torch.tensor([1.0, 2.0]))
        tensor(0.5000)
    """
    m = (norms > 0).sum(dim=-1).to(cosines.dtype)  # (...)
    total = m + 2.0 * cosines.sum(dim=-1)  # (...) = ‖Σ_k unit g_k‖²
    score = 2.0 * total / m.clamp_min(1.0).square() - 1.0
    return torch.where(m > 0, score, torch.zeros_like(score)).clamp(-1.0, 1.0)


def alignment_score(jac: Tensor) -> Tensor:
    """Gradient alignment score ``A`` of the rows of ``J`` (:func:`alignment_from_cosines`).

    Args:
        jac: per-loss gradients ``[K, P]``.

    Returns:
        0-d score in ``[-1, 1]``; 1 for identical rows, ``cos θ`` for two rows at angle θ.
    """
    cos, norms, _ = gram_statistics(jac)
    return alignment_from_cosines(upper_pairs(cos), norms)
