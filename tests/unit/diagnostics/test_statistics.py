"""Per-step statistics, the recorder and window aggregates."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_pinn.diagnostics import (
    ProbeRecorder,
    aggregate_window,
    conflict_indicator,
    gram_statistics,
    imbalance,
    loss_norms,
    pair_names,
    pairwise_cosines,
    update_cosines,
    upper_pairs,
)


def test_identical_opposite_orthogonal():
    g = torch.randn(100)
    assert pairwise_cosines(torch.stack([g, g]))[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert pairwise_cosines(torch.stack([g, -3 * g]))[0, 1] == pytest.approx(-1.0, abs=1e-6)
    e = torch.eye(4)[:2]
    assert pairwise_cosines(e)[0, 1] == 0.0


def test_matches_direct_definition_and_is_symmetric():
    jac = torch.randn(4, 257)
    cos = pairwise_cosines(jac)
    unit = jac / jac.norm(dim=1, keepdim=True)
    torch.testing.assert_close(cos, unit @ unit.T, atol=1e-5, rtol=0)
    torch.testing.assert_close(cos, cos.T)
    torch.testing.assert_close(loss_norms(jac), jac.norm(dim=1), rtol=1e-5, atol=0)


@pytest.mark.parametrize("scale", [1e-20, 1e-3, 7.0, 1e20])
def test_cosines_scale_invariant_and_norms_overflow_safe(scale):
    jac = torch.randn(3, 64)
    scales = torch.tensor([scale, 1.0, 1.0 / scale])[:, None]
    torch.testing.assert_close(
        pairwise_cosines(jac * scales), pairwise_cosines(jac), atol=1e-5, rtol=0
    )
    norms = loss_norms(jac * scale)
    assert torch.isfinite(norms).all()
    torch.testing.assert_close(
        norms, jac.double().norm(dim=1).mul(scale).float(), rtol=1e-5, atol=0
    )


def test_imbalance_of_1_and_100_is_two_decades():
    assert imbalance(torch.tensor([1.0, 100.0])).item() == pytest.approx(2.0)
    assert imbalance(torch.tensor([[3.0, 3.0], [1.0, 10.0]])).tolist() == pytest.approx([0.0, 1.0])


def test_zero_rows_are_finite_and_documented():
    jac = torch.zeros(3, 10)
    jac[0, 0] = 1.0
    cos, norms, ucos = gram_statistics(jac, torch.zeros(10))
    assert torch.isfinite(cos).all() and torch.isfinite(norms).all() and torch.isfinite(ucos).all()
    assert cos[0, 0] == 1.0 and cos[1, 1] == 0.0 and cos[0, 1] == 0.0  # a zero row: cosine 0
    assert not conflict_indicator(cos).any()
    assert norms.tolist() == [1.0, 0.0, 0.0]
    assert ucos.tolist() == [0.0, 0.0, 0.0]  # zero update: cosine 0
    assert imbalance(norms).item() == pytest.approx(12.0)  # floored at 1e-12
    assert imbalance(torch.zeros(3)).item() == 0.0


def test_update_cosines():
    jac = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    d = torch.tensor([2.0, 0.0])
    torch.testing.assert_close(update_cosines(jac, d), torch.tensor([1.0, 0.0, -1.0]))
    with pytest.raises(ValueError, match="3 entries"):
        update_cosines(jac, torch.zeros(3))


def test_pairs_order_and_names():
    m = torch.arange(16.0).reshape(4, 4)
    assert upper_pairs(m).tolist() == [1.0, 2.0, 3.0, 6.0, 7.0, 11.0]
    assert pair_names(["a", "b", "c"]) == ["a-b", "a-c", "b-c"]
    with pytest.raises(ValueError, match=r"\[K, P\]"):
        pairwise_cosines(torch.zeros(3))


def test_recorder_records_and_aggregates_with_late_half():
    rec = ProbeRecorder(10, 2)
    g = torch.tensor([1.0, 0.0])
    for t in range(10):
        other = -g if t < 4 else g  # conflict in steps 1..4 only
        rec.record(torch.stack([g, 3 * other]), g, index=t)
    stats = aggregate_window(**rec.buffers())
    assert stats.conflict_rate.item() == pytest.approx(0.4)
    assert stats.late_conflict_rate.item() == 0.0  # late half = steps 6..10
    assert stats.mean_cosine.item() == pytest.approx(0.2)
    assert stats.median_imbalance.item() == pytest.approx(math.log10(3))
    torch.testing.assert_close(stats.median_norm, torch.tensor([1.0, 3.0]))
    assert stats.update_conflict_share.item() == pytest.approx(0.4)
    torch.testing.assert_close(stats.loss_update_conflict_share, torch.tensor([0.0, 0.4]))
    assert (stats.steps, stats.finite_steps, stats.late_finite_steps) == (10, 10, 5)


def test_nonfinite_and_unrecorded_steps_are_excluded():
    rec = ProbeRecorder(6, 2)
    good = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    rec.record(good, good[0], index=0)
    rec.record(good, None, finite=False, index=1)
    rec.record(torch.tensor([[float("nan"), 0.0], [1.0, 0.0]]), None, index=2)
    stats = aggregate_window(**rec.buffers())
    assert stats.finite_steps == 1
    assert stats.conflict_rate.item() == 1.0
    assert stats.late_finite_steps == 0 and stats.late_conflict_rate.item() == 0.0
    empty = aggregate_window(**ProbeRecorder(4, 3).buffers())
    assert empty.finite_steps == 0 and torch.isfinite(empty.median_imbalance)


def test_recorder_state_dict_round_trip_and_ring():
    rec = ProbeRecorder(5, 3, ring=True)
    for _ in range(7):
        rec.record(torch.randn(3, 8), torch.randn(8))
    clone = ProbeRecorder.from_state_dict(rec.state_dict())
    for name, value in rec.buffers().items():
        torch.testing.assert_close(clone.buffers()[name], value)
    assert clone.count == 7 and clone.buffers()["cosines"].shape == (5, 3)
    assert clone.conflict_rate().min() >= 0.0 and clone.conflict_rate().max() <= 1.0
    with pytest.raises(IndexError):
        ProbeRecorder(2, 2).record(torch.randn(2, 3), index=2)
    with pytest.raises(ValueError, match="K >= 2"):
        ProbeRecorder(2, 1)
