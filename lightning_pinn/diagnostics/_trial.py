"""Scores and the result table of the guarded switch (plain tensors and data, no Trainer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["TRIAL_SCORES", "TrialResult", "TrialScore", "trial_markdown", "trial_score"]

TrialScore = Literal["geomean", "sum", "residual"]
TRIAL_SCORES: tuple[str, ...] = ("geomean", "sum", "residual")


def trial_score(before: Tensor, after: Tensor, how: TrialScore = "geomean") -> Tensor:
    """Scale-free score of a trial from the unweighted held-out losses (lower is better).

    Args:
        before: ``[K]`` held-out losses at the end of the probe.
        after: ``[K]`` held-out losses at the end of the trial.
        how: ``"geomean"`` — geometric mean over k of ``L_k(after) / L_k(before)``;
            ``"sum"`` — ``Σ_k L_k(after) / Σ_k L_k(before)``; ``"residual"`` — the first
            loss's ratio (residual-led).

    Returns:
        0-d score; ``inf`` when ``after`` is not finite (a diverged trial never wins).

    Example:
        >>> trial_score(torch.tensor([1.0, 4.0]), torch.tensor([0.5, 0.5]))
        tensor(0.2500, dtype=torch.float64)
    """
    if how not in TRIAL_SCORES:
        raise ValueError(f"unknown trial score {how!r}; valid: {', '.join(TRIAL_SCORES)}")
    tiny = torch.finfo(torch.float64).tiny
    b = before.double().clamp_min(tiny)  # (K,)
    a = after.double()  # (K,)
    if how == "geomean":
        score = torch.exp(torch.log(a.clamp_min(tiny) / b).mean())
    elif how == "sum":
        score = a.sum() / b.sum()
    else:
        score = a[0] / b[0]
    return torch.where(torch.isfinite(a).all(), score, torch.full_like(score, float("inf")))


@dataclass(frozen=True)
class TrialResult:
    """One row of the guarded switch's table.

    Attributes:
        candidate: the intervention tried (its registered name, or ``repr`` of an object).
        score: its trial score (lower is better; all-reduced under DDP).
        rank: its place in the diagnosis's prior (1 = the diagnosed intervention).
        chosen: whether training continued from it.
        losses: the unweighted held-out losses at the end of its trial, by loss name (mean
            over DDP ranks).
        during: the same losses part-way through the trial, ``{"steps": s, "losses": {...}}``
            after 1/4, 1/2 and 3/4 of its steps (where those differ from 0 and the end), so
            that shorter trials can be replayed from one run's record.
    """

    candidate: str
    score: float
    rank: int
    chosen: bool
    losses: dict[str, float]
    during: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["during"] = [dict(d, losses=dict(d["losses"])) for d in self.during]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        during = tuple(
            {"steps": int(d["steps"]), "losses": dict(d["losses"])} for d in data.get("during", ())
        )
        return cls(**{**data, "losses": dict(data["losses"]), "during": during})


def trial_markdown(
    rows: Sequence[TrialResult], steps: int, spent: int, how: str, margin: float = 0.0
) -> list[str]:
    """Markdown lines of the trial table."""
    kept = f"; the first-ranked kept unless beaten by a factor {1 + margin:g}" if margin else ""
    lines = [
        "",
        f"### Guarded switch: {len(rows)} candidates x {steps} steps ({spent} steps spent), "
        f"score {how} of the held-out loss ratios (lower is better{kept})",
        "",
        "| candidate | score | diagnosis rank | chosen |",
        "|---|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(f"| {r.candidate} | {r.score:.4g} | {r.rank} | {'yes' if r.chosen else ''} |")
    return lines
