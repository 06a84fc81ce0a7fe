"""Conflict diagnostics on plain tensors: per-step statistics of ``J``, window aggregates,
the regime rule, the report and its figure (docs/concepts.md). No Trainer in here."""

from lightning_pinn.diagnostics._plots import plot_probe
from lightning_pinn.diagnostics._recorder import (
    ProbeRecorder,
    StepStatistics,
    WindowStatistics,
    aggregate_window,
)
from lightning_pinn.diagnostics._regime import (
    DEFAULT_INTERVENTIONS,
    DEFAULT_TAU_DIR,
    DEFAULT_TAU_MAG,
    MIN_FINITE_SHARE,
    MIN_FINITE_STEPS,
    Diagnosis,
    Regime,
    classify_regime,
    min_finite_steps,
    resolve_interventions,
    validate_thresholds,
)
from lightning_pinn.diagnostics._report import (
    ConflictReport,
    LossStatistics,
    PairStatistics,
    build_report,
)
from lightning_pinn.diagnostics._statistics import (
    DEFAULT_FLOOR,
    conflict_indicator,
    gram_statistics,
    imbalance,
    loss_norms,
    pair_indices,
    pair_names,
    pairwise_cosines,
    update_cosines,
    upper_pairs,
)

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_INTERVENTIONS",
    "DEFAULT_TAU_DIR",
    "DEFAULT_TAU_MAG",
    "MIN_FINITE_SHARE",
    "MIN_FINITE_STEPS",
    "ConflictReport",
    "Diagnosis",
    "LossStatistics",
    "PairStatistics",
    "ProbeRecorder",
    "Regime",
    "StepStatistics",
    "WindowStatistics",
    "aggregate_window",
    "build_report",
    "classify_regime",
    "min_finite_steps",
    "conflict_indicator",
    "gram_statistics",
    "imbalance",
    "loss_norms",
    "pair_indices",
    "pair_names",
    "pairwise_cosines",
    "plot_probe",
    "resolve_interventions",
    "update_cosines",
    "upper_pairs",
    "validate_thresholds",
]
