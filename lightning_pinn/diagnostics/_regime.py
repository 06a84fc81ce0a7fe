"""The regime rule: directional conflict, magnitude imbalance or low conflict (docs/concepts.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from torch import Tensor

from lightning_pinn.strategies import strategy_names

__all__ = [
    "DEFAULT_INTERVENTIONS",
    "DEFAULT_TAU_COS",
    "DEFAULT_TAU_DIR",
    "DEFAULT_TAU_MAG",
    "MIN_FINITE_SHARE",
    "MIN_FINITE_STEPS",
    "RULES",
    "Diagnosis",
    "Regime",
    "classify_regime",
    "min_finite_steps",
    "resolve_interventions",
    "rule_thresholds",
    "validate_thresholds",
]

DEFAULT_TAU_DIR = 0.5
"""Default conflict-rate threshold of the directional regime (a share of late steps)."""
DEFAULT_TAU_MAG = 1.0
"""Default imbalance threshold of the magnitude regime, in decades (a factor 10)."""
DEFAULT_TAU_COS = 0.0
"""Default cosine margin of the directional regime: a persistent pair's late mean cosine must
be below ``-tau_cos`` (0: negative, the DESIGN rule)."""
RULES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "design": MappingProxyType(
            {"tau_dir": DEFAULT_TAU_DIR, "tau_mag": DEFAULT_TAU_MAG, "tau_cos": DEFAULT_TAU_COS}
        ),
        "recipe-map": MappingProxyType({"tau_dir": 0.5, "tau_mag": 0.25, "tau_cos": 0.6}),
    }
)
"""Named threshold sets of the regime rule (docs/concepts.md, docs/results.md).

- ``design``: DESIGN.md's defaults (``tau_dir`` 0.5, ``tau_mag`` 1.0, ``tau_cos`` 0), the
  defaults of :class:`~lightning_pinn.ConflictCallback` and :func:`classify_regime`;
- ``recipe-map``: chosen across the rule families on the calibration half of the regime map
  under the recipes (seed 0, 2026-11-29): directional only when a persistent pair's late mean
  cosine is below -0.6, magnitude from a quarter of a decade of imbalance.
"""

MIN_FINITE_STEPS = 2
"""A probe with fewer finite steps than this (or than ``MIN_FINITE_SHARE`` of the window)
diagnoses nothing: its report is marked invalid and no intervention is applied."""
MIN_FINITE_SHARE = 0.1
"""The share of the probe window that must be finite for a diagnosis."""


def min_finite_steps(probe_steps: int) -> int:
    """The fewest finite probe steps a diagnosis needs: ``max(2, ceil(0.1 T))``."""
    return max(MIN_FINITE_STEPS, math.ceil(MIN_FINITE_SHARE * probe_steps))


class Regime(str, Enum):
    """The conflict regime of a problem, read from the probe window."""

    DIRECTIONAL = "directional"
    """Persistent directional conflict: some pair points apart in most late steps."""
    MAGNITUDE = "magnitude"
    """Magnitude imbalance: the gradient norms differ by at least ``10**tau_mag``."""
    LOW = "low"
    """Low or transient conflict."""


DEFAULT_INTERVENTIONS: Mapping[Regime, str] = MappingProxyType(
    {Regime.DIRECTIONAL: "adapters", Regime.MAGNITUDE: "reweight", Regime.LOW: "none"}
)
"""Default intervention per regime (docs/concepts.md); override with ``interventions=``."""


def validate_thresholds(tau_dir: float, tau_mag: float, tau_cos: float = DEFAULT_TAU_COS) -> None:
    """Raise ``ValueError`` unless ``0 <= tau_dir <= 1``, ``tau_mag >= 0`` (finite) and
    ``0 <= tau_cos < 1``."""
    if isinstance(tau_cos, bool) or not (
        isinstance(tau_cos, (int, float)) and 0.0 <= tau_cos < 1.0
    ):
        raise ValueError(
            f"tau_cos is a cosine margin and must lie in [0, 1) (0: any negative late mean "
            f"cosine counts), got {tau_cos!r}"
        )
    if not (isinstance(tau_dir, (int, float)) and 0.0 <= tau_dir <= 1.0):
        raise ValueError(f"tau_dir is a conflict rate and must lie in [0, 1], got {tau_dir!r}")
    if not (isinstance(tau_mag, (int, float)) and math.isfinite(tau_mag) and tau_mag >= 0.0):
        raise ValueError(
            f"tau_mag is a number of decades and must be finite and >= 0, got {tau_mag!r}"
        )


def rule_thresholds(rule: str) -> dict[str, float]:
    """The thresholds ``{"tau_dir", "tau_mag", "tau_cos"}`` of a named rule of :data:`RULES`.

    Raises:
        ValueError: an unknown rule name.
    """
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(f"unknown regime rule {rule!r}; valid: {', '.join(RULES)}")
    return dict(RULES[rule])


def resolve_interventions(
    interventions: Mapping[Regime | str, str] | None = None,
) -> dict[Regime, str]:
    """The default mapping updated with the user's entries.

    Args:
        interventions: regime (``Regime`` or its value) to a strategy name of
            :func:`lightning_pinn.strategies.strategy_names`; missing regimes keep the default.

    Raises:
        ValueError: an unknown regime or strategy name.
    """
    mapping = dict(DEFAULT_INTERVENTIONS)
    for key, strategy in (interventions or {}).items():
        try:
            regime = Regime(key)
        except ValueError:
            valid = ", ".join(r.value for r in Regime)
            raise ValueError(f"unknown regime {key!r} in interventions; valid: {valid}") from None
        if strategy not in strategy_names():
            raise ValueError(
                f"unknown intervention {strategy!r} for regime {regime.value!r}; valid: "
                f"{', '.join(strategy_names())}"
            )
        mapping[regime] = strategy
    return mapping


@dataclass(frozen=True)
class Diagnosis:
    """Outcome of :func:`classify_regime`.

    Attributes:
        regime: the :class:`Regime`.
        strategy: the intervention mapped to it.
        reason: one sentence explaining the decision with the numbers that drove it.
        pair: index of the pair the reason names (the persistent pair for ``directional``,
            the pair with the highest late conflict rate otherwise), or ``None`` for no pairs.
    """

    regime: Regime
    strategy: str
    reason: str
    pair: int | None


def _as_list(values: Tensor | Sequence[float]) -> list[float]:
    if isinstance(values, Tensor):
        return [float(v) for v in values.detach().cpu().reshape(-1).tolist()]
    return [float(v) for v in values]


def classify_regime(
    late_conflict_rate: Tensor | Sequence[float],
    late_mean_cosine: Tensor | Sequence[float],
    median_imbalance: Tensor | float,
    *,
    tau_dir: float = DEFAULT_TAU_DIR,
    tau_mag: float = DEFAULT_TAU_MAG,
    pair_names: Sequence[str] | None = None,
    interventions: Mapping[Regime | str, str] | None = None,
    tau_cos: float = DEFAULT_TAU_COS,
) -> Diagnosis:
    """Apply the regime rule (docs/concepts.md).

    - ``directional`` if some pair has late conflict rate ``>= tau_dir`` and a late mean
      cosine ``< -tau_cos`` (default 0: negative; sign flips of near-orthogonal noisy
      gradients alone are not persistent, and a margin asks for strong conflict);
    - else ``magnitude`` if the median imbalance ``>= tau_mag`` decades;
    - else ``low``.

    Args:
        late_conflict_rate: ``f_ij^late`` per pair ``[npairs]``.
        late_mean_cosine: mean cosine over the late half per pair ``[npairs]``.
        median_imbalance: median ``I(t)`` over the window (decades).
        tau_dir: conflict-rate threshold in ``[0, 1]``.
        tau_mag: imbalance threshold in decades, ``>= 0``.
        pair_names: names of the pairs for the reason (default ``"pair <i>"``).
        interventions: overrides of :data:`DEFAULT_INTERVENTIONS`.
        tau_cos: cosine margin in ``[0, 1)``.

    Returns:
        A :class:`Diagnosis`.

    Raises:
        ValueError: invalid thresholds, mappings, or mismatched lengths.

    Example:
        >>> classify_regime([0.8], [-0.3], 0.2).regime
        <Regime.DIRECTIONAL: 'directional'>
    """
    validate_thresholds(tau_dir, tau_mag, tau_cos)
    mapping = resolve_interventions(interventions)
    rates = _as_list(late_conflict_rate)
    cosines = _as_list(late_mean_cosine)
    imb = float(
        median_imbalance.item() if isinstance(median_imbalance, Tensor) else median_imbalance
    )
    if len(rates) != len(cosines):
        raise ValueError(f"{len(rates)} conflict rates but {len(cosines)} mean cosines")
    names = list(pair_names) if pair_names is not None else [f"pair {i}" for i in range(len(rates))]
    if len(names) != len(rates):
        raise ValueError(f"{len(names)} pair names for {len(rates)} pairs")

    persistent = [
        i
        for i, (f, c) in enumerate(zip(rates, cosines, strict=True))
        if f >= tau_dir and c < -tau_cos
    ]
    bound = "0" if tau_cos == 0 else f"-tau_cos {-tau_cos:+.2f}"
    if persistent:
        i = min(persistent, key=lambda p: (cosines[p], -rates[p], names[p]))
        reason = (
            f"Pair {names[i]} conflicts persistently: late-half conflict rate {rates[i]:.2f} "
            f">= tau_dir {tau_dir:.2f} with late mean cosine {cosines[i]:+.2f} < {bound}."
        )
        return Diagnosis(Regime.DIRECTIONAL, mapping[Regime.DIRECTIONAL], reason, i)

    top = min(range(len(rates)), key=lambda p: (-rates[p], cosines[p], names[p]), default=None)
    if top is None:
        worst = "no loss pairs"
    else:
        worst = f"highest late-half conflict rate {rates[top]:.2f} for {names[top]}"
        if rates[top] >= tau_dir:
            worst += f", whose late mean cosine {cosines[top]:+.2f} is not " + (
                "negative" if tau_cos == 0 else f"below {bound}"
            )
    if imb >= tau_mag:
        reason = (
            f"No pair conflicts persistently ({worst}), but the median imbalance of {imb:.2f} "
            f"decades (a factor {10**imb:.3g}) is >= tau_mag {tau_mag:.2f}."
        )
        return Diagnosis(Regime.MAGNITUDE, mapping[Regime.MAGNITUDE], reason, top)
    reason = (
        f"No pair conflicts persistently ({worst}) and the median imbalance of {imb:.2f} "
        f"decades is < tau_mag {tau_mag:.2f}."
    )
    return Diagnosis(Regime.LOW, mapping[Regime.LOW], reason, top)
