"""``ConflictReport``: the probe's statistics, the regime and the chosen intervention."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lightning_pinn.diagnostics._recorder import WindowStatistics
from lightning_pinn.diagnostics._regime import (
    DEFAULT_TAU_COS,
    DEFAULT_TAU_DIR,
    DEFAULT_TAU_MAG,
    Regime,
    classify_regime,
    min_finite_steps,
    resolve_interventions,
)
from lightning_pinn.diagnostics._statistics import pair_indices, pair_names
from lightning_pinn.diagnostics._trial import TrialResult, trial_markdown

__all__ = ["ConflictReport", "LossStatistics", "PairStatistics", "build_report"]


@dataclass(frozen=True)
class PairStatistics:
    """Window statistics of one loss pair ``(first, second)``."""

    first: str
    second: str
    conflict_rate: float
    late_conflict_rate: float
    mean_cosine: float
    late_mean_cosine: float

    @property
    def name(self) -> str:
        return f"{self.first}-{self.second}"


@dataclass(frozen=True)
class LossStatistics:
    """Window statistics of one loss: gradient norm and cosine to the applied update."""

    name: str
    median_norm: float
    update_conflict_share: float
    mean_update_cosine: float


@dataclass(frozen=True)
class ConflictReport:
    """What the probe found and what it chose (docs/concepts.md).

    Attributes:
        regime: ``"directional"``, ``"magnitude"`` or ``"low"``.
        strategy: the intervention chosen for the regime.
        probe_steps: T, the probe window length.
        loss_names: the K loss names.
        pairs: per-pair statistics, upper triangle in row-major order.
        losses: per-loss statistics.
        median_imbalance: median of ``log10(max n / min n)`` over the window (decades).
        update_conflict_share: share of steps where some ``a_k = cos(g_k, d) < 0``.
        tau_dir: conflict-rate threshold used.
        tau_mag: imbalance threshold used (decades).
        tau_cos: cosine margin used (a persistent pair's late mean cosine is below
            ``-tau_cos``; 0 for reports made before it existed).
        reason: one sentence explaining the decision.
        finite_steps: steps that entered the statistics (non-finite steps are excluded).
        interventions: the regime → strategy mapping used.
        valid: whether enough probe steps were finite for a diagnosis
            (:func:`~lightning_pinn.diagnostics.min_finite_steps`); an invalid report's
            regime, strategy and statistics mean nothing, its ``reason`` says why, and
            ``ConflictCallback`` does not switch on it.
        mean_alignment: mean gradient alignment score ``A = 2‖mean_k g_k/‖g_k‖‖² − 1`` over
            the probe (Wang et al. 2025; 1: all gradients agree); ``None`` in reports saved
            before it existed.
        late_mean_alignment: mean ``A`` over the late half of the probe.
        trial: the guarded switch's table (empty without ``trial_steps``); ``strategy`` is
            then the candidate chosen.
        trial_steps: steps per candidate of the guarded switch (0: none).
        trial_steps_spent: training steps the trials took from the budget.
        trial_score: the score used (``"geomean"``, ``"sum"`` or ``"residual"``).
        trial_margin: the margin by which another candidate had to beat the diagnosis's first
            choice (``ConflictCallback(trial_margin=...)``; 0: the best score won).
        reprobes: the re-probes after the switch, each ``{"step", "regime", "strategy",
            "switched_to"}`` (``switched_to`` None when the strategy was kept), plus
            ``"escalated": True`` for an escalation (``ConflictCallback(escalate=True)``).

    Example (``callback`` is the ``ConflictCallback`` of a finished run)::

        report = ConflictReport.from_dict(callback.report.to_dict())
        print(report.to_markdown())
    """

    regime: str
    strategy: str
    probe_steps: int
    loss_names: tuple[str, ...]
    pairs: tuple[PairStatistics, ...]
    losses: tuple[LossStatistics, ...]
    median_imbalance: float
    update_conflict_share: float
    tau_dir: float
    tau_mag: float
    reason: str
    finite_steps: int
    interventions: dict[str, str] = field(default_factory=dict)
    valid: bool = True
    mean_alignment: float | None = None
    late_mean_alignment: float | None = None
    trial: tuple[TrialResult, ...] = ()
    trial_steps: int = 0
    trial_steps_spent: int = 0
    trial_score: str | None = None
    trial_margin: float = 0.0
    reprobes: tuple[dict[str, Any], ...] = ()
    tau_cos: float = 0.0

    def pair(self, first: str, second: str) -> PairStatistics:
        """Statistics of the pair ``{first, second}`` (in either order)."""
        for p in self.pairs:
            if {p.first, p.second} == {first, second}:
                return p
        raise KeyError(f"no pair {first!r}-{second!r}; pairs are {[p.name for p in self.pairs]}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (plain str, int, float, list, dict)."""
        out = asdict(self)
        out["loss_names"] = list(self.loss_names)
        out["pairs"] = [asdict(p) for p in self.pairs]
        out["losses"] = [asdict(s) for s in self.losses]
        out["trial"] = [r.to_dict() for r in self.trial]
        out["reprobes"] = [dict(e) for e in self.reprobes]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConflictReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a loaded JSON file)."""
        values = dict(data)
        values["loss_names"] = tuple(values["loss_names"])
        values["pairs"] = tuple(PairStatistics(**p) for p in values["pairs"])
        values["losses"] = tuple(LossStatistics(**s) for s in values["losses"])
        values["interventions"] = dict(values.get("interventions", {}))
        values["trial"] = tuple(TrialResult.from_dict(r) for r in values.get("trial", ()))
        values["reprobes"] = tuple(dict(e) for e in values.get("reprobes", ()))
        return cls(**values)

    def to_markdown(self) -> str:
        """A readable summary: pair table, per-loss table, regime, reason and intervention."""
        lines = [
            "## Gradient conflict report",
            "",
            f"Probe: {self.probe_steps} steps ({self.finite_steps} finite); "
            f"thresholds tau_dir = {self.tau_dir:g}, tau_mag = {self.tau_mag:g} decades"
            + (f", tau_cos = {self.tau_cos:g}." if self.tau_cos else "."),
            "",
            "| loss pair | conflict rate | late rate | mean cosine | late mean cosine |",
            "|---|---:|---:|---:|---:|",
        ]
        for p in self.pairs:
            lines.append(
                f"| {p.name} | {p.conflict_rate:.2f} | {p.late_conflict_rate:.2f} | "
                f"{p.mean_cosine:+.3f} | {p.late_mean_cosine:+.3f} |"
            )
        lines += [
            "",
            "| loss | median grad norm | share of steps with a_k < 0 | mean a_k |",
            "|---|---:|---:|---:|",
        ]
        for s in self.losses:
            lines.append(
                f"| {s.name} | {s.median_norm:.3e} | {s.update_conflict_share:.2f} | "
                f"{s.mean_update_cosine:+.3f} |"
            )
        if not self.valid:
            lines += ["", f"**No diagnosis** — {self.reason}", ""]
            return "\n".join(lines)
        lines += [
            "",
            f"Median imbalance: {self.median_imbalance:.2f} decades; "
            f"steps where some a_k < 0: {self.update_conflict_share:.2f}."
            + _alignment_text(self.mean_alignment, self.late_mean_alignment),
            "",
            f"**Regime: {self.regime}** — {self.reason}",
            "",
            f"**Intervention: {self.strategy}**",
            "",
        ]
        if self.trial:
            how = self.trial_score or "geomean"
            lines += trial_markdown(
                self.trial, self.trial_steps, self.trial_steps_spent, how, self.trial_margin
            )
            lines.append("")
        for e in self.reprobes:
            if e.get("escalated"):
                after = f"escalated to {e['switched_to']} (the conflict remains)"
            else:
                after = f"stepped back to {e['switched_to']}" if e["switched_to"] else "kept"
            lines.append(f"- Re-probe at step {e['step']}: {e['regime']}; {e['strategy']} {after}")
        return "\n".join(lines)


def build_report(
    stats: WindowStatistics,
    loss_names: Sequence[str],
    *,
    probe_steps: int | None = None,
    tau_dir: float = DEFAULT_TAU_DIR,
    tau_mag: float = DEFAULT_TAU_MAG,
    interventions: Mapping[Regime | str, str] | None = None,
    tau_cos: float = DEFAULT_TAU_COS,
) -> ConflictReport:
    """Classify the window and assemble the report (one host transfer of the statistics).

    Args:
        stats: window aggregates from :func:`aggregate_window`.
        loss_names: the K loss names, in ``J``'s row order.
        probe_steps: T (default ``stats.steps``).
        tau_dir: conflict-rate threshold in ``[0, 1]``.
        tau_mag: imbalance threshold in decades.
        interventions: overrides of the default regime → strategy mapping.
        tau_cos: cosine margin of the directional regime, in ``[0, 1)``.

    Returns:
        The :class:`ConflictReport`.
    """
    names = tuple(loss_names)
    labels = pair_names(names)
    if len(labels) != stats.conflict_rate.numel():
        raise ValueError(
            f"{len(names)} loss names give {len(labels)} pairs, the statistics have "
            f"{stats.conflict_rate.numel()}"
        )

    def host(t: Any) -> list[float]:
        return [float(v) for v in t.detach().cpu().reshape(-1).tolist()]

    rate, late_rate = host(stats.conflict_rate), host(stats.late_conflict_rate)
    mean_cos, late_cos = host(stats.mean_cosine), host(stats.late_mean_cosine)
    diagnosis = classify_regime(
        late_rate,
        late_cos,
        float(stats.median_imbalance),
        tau_dir=tau_dir,
        tau_mag=tau_mag,
        pair_names=labels,
        interventions=interventions,
        tau_cos=tau_cos,
    )
    rows, cols = pair_indices(len(names)).tolist()
    pairs = tuple(
        PairStatistics(names[i], names[j], rate[p], late_rate[p], mean_cos[p], late_cos[p])
        for p, (i, j) in enumerate(zip(rows, cols, strict=True))
    )
    norm, share, mean_a = (
        host(stats.median_norm),
        host(stats.loss_update_conflict_share),
        host(stats.mean_update_cosine),
    )
    losses = tuple(LossStatistics(n, norm[k], share[k], mean_a[k]) for k, n in enumerate(names))
    mapping = resolve_interventions(interventions)
    window = int(probe_steps if probe_steps is not None else stats.steps)
    needed = min_finite_steps(window)
    valid = int(stats.finite_steps) >= needed
    reason = diagnosis.reason
    if not valid:
        reason = (
            f"only {int(stats.finite_steps)} of {window} probe steps had finite losses and "
            f"gradients (at least {needed} are needed): too few to diagnose a regime; the "
            "strategy is left as it is"
        )
    return ConflictReport(
        regime=diagnosis.regime.value,
        strategy=diagnosis.strategy,
        probe_steps=window,
        loss_names=names,
        pairs=pairs,
        losses=losses,
        median_imbalance=float(stats.median_imbalance),
        update_conflict_share=float(stats.update_conflict_share),
        tau_dir=float(tau_dir),
        tau_mag=float(tau_mag),
        reason=reason,
        finite_steps=int(stats.finite_steps),
        interventions={r.value: s for r, s in mapping.items()},
        valid=valid,
        mean_alignment=_optional_float(stats.mean_alignment),
        late_mean_alignment=_optional_float(stats.late_mean_alignment),
        tau_cos=float(tau_cos),
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _alignment_text(mean: float | None, late: float | None) -> str:
    if mean is None or late is None:
        return ""
    return f" Gradient alignment A: mean {mean:+.3f}, late half {late:+.3f}."
