"""Trial scores of the guarded switch and the trial table in the report."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_pinn.diagnostics import TrialResult, trial_score


def test_scores():
    before, after = torch.tensor([1.0, 4.0, 2.0]), torch.tensor([0.5, 1.0, 2.0])
    assert float(trial_score(before, after)) == pytest.approx((0.5 * 0.25 * 1.0) ** (1 / 3))
    assert float(trial_score(before, after, "sum")) == pytest.approx(3.5 / 7.0)
    assert float(trial_score(before, after, "residual")) == pytest.approx(0.5)


def test_geomean_is_scale_free():
    before, after = torch.tensor([1e-6, 1e3]), torch.tensor([5e-7, 2e3])
    scaled = torch.tensor([1.0, 1e-9])
    a = float(trial_score(before, after))
    assert a == pytest.approx(float(trial_score(before * scaled, after * scaled)))
    assert a == pytest.approx(1.0)


@pytest.mark.parametrize("how", ["geomean", "sum", "residual"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_diverged_trial_scores_inf(how, bad):
    score = trial_score(torch.ones(3), torch.tensor([0.1, bad, 0.1]), how)
    assert math.isinf(float(score)) and float(score) > 0


def test_zero_losses_are_finite():
    assert math.isfinite(float(trial_score(torch.zeros(2), torch.zeros(2))))


def test_unknown_score():
    with pytest.raises(ValueError, match="unknown trial score"):
        trial_score(torch.ones(2), torch.ones(2), "mean")  # type: ignore[arg-type]


def test_trial_result_round_trip():
    row = TrialResult("none", 0.75, 2, True, {"residual": 0.1})
    assert TrialResult.from_dict(row.to_dict()) == row
