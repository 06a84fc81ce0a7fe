"""Gradient alignment score A = 2‖mean_k g_k/‖g_k‖‖² − 1 (Wang et al. 2025)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_pinn.diagnostics import (
    ProbeRecorder,
    aggregate_window,
    alignment_from_cosines,
    alignment_score,
    build_report,
)


def _direct(jac: torch.Tensor) -> float:
    """The definition, in float64 over the non-zero rows."""
    rows = jac.double()
    norms = rows.norm(dim=1)
    units = rows[norms > 0] / norms[norms > 0, None]
    return 2.0 * float(units.mean(0).square().sum()) - 1.0


def test_identical_rows_give_one():
    g = torch.randn(50)
    assert float(alignment_score(torch.stack([g, g, g]))) == pytest.approx(1.0, abs=1e-6)
    assert float(alignment_score(torch.stack([g, 3 * g, 0.1 * g]))) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("theta", [0.0, 0.3, math.pi / 2, 2.0, math.pi])
def test_two_rows_give_cos_theta(theta):
    jac = torch.tensor([[1.0, 0.0, 0.0], [2 * math.cos(theta), 2 * math.sin(theta), 0.0]])
    assert float(alignment_score(jac)) == pytest.approx(math.cos(theta), abs=1e-6)


def test_opposite_rows_and_three_rows_match_definition():
    assert float(alignment_score(torch.tensor([[1.0, 0.0], [-5.0, 0.0]]))) == pytest.approx(-1.0)
    jac = torch.randn(3, 20)
    assert float(alignment_score(jac)) == pytest.approx(_direct(jac), abs=1e-5)


def test_zero_rows_are_finite():
    assert float(alignment_score(torch.zeros(3, 8))) == 0.0
    one = torch.zeros(2, 8)
    one[0, 3] = 1.0
    assert float(alignment_score(one)) == pytest.approx(1.0)
    jac = torch.randn(3, 8)
    jac[1] = 0.0
    value = float(alignment_score(jac))
    assert math.isfinite(value) and value == pytest.approx(_direct(jac), abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 5),
    seed=st.integers(0, 10_000),
    scales=st.lists(st.floats(1e-3, 1e3), min_size=5, max_size=5),
)
def test_invariant_to_row_scaling_and_permutation(k, seed, scales):
    jac = torch.randn(k, 16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    base = float(alignment_score(jac))
    scaled = jac * torch.tensor(scales[:k], dtype=torch.float64)[:, None]
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(seed + 1))
    assert float(alignment_score(scaled)) == pytest.approx(base, abs=1e-5)
    assert float(alignment_score(jac[perm])) == pytest.approx(base, abs=1e-5)
    assert -1.0 - 1e-6 <= base <= 1.0 + 1e-6
    assert base == pytest.approx(_direct(jac), abs=1e-5)


def test_batched_from_cosines():
    cos = torch.tensor([[1.0], [0.0], [-1.0]])
    norms = torch.ones(3, 2)
    torch.testing.assert_close(alignment_from_cosines(cos, norms), torch.tensor([1.0, 0.0, -1.0]))


def test_recorded_step_window_and_report():
    rec = ProbeRecorder(4, 2)
    e = torch.eye(2)
    rows = [e, torch.stack([e[0], e[0]]), torch.stack([e[0], -e[0]]), torch.stack([e[0], e[0]])]
    steps = [rec.record(j, j.sum(0)) for j in rows]
    assert [float(s.alignment) for s in steps] == pytest.approx([0.0, 1.0, -1.0, 1.0], abs=1e-6)
    stats = aggregate_window(**rec.buffers())
    assert float(stats.mean_alignment) == pytest.approx(0.25, abs=1e-6)
    assert float(stats.late_mean_alignment) == pytest.approx(0.0, abs=1e-6)  # steps 3..4
    report = build_report(stats, ("a", "b"))
    assert report.mean_alignment == pytest.approx(0.25, abs=1e-6)
    assert report.late_mean_alignment == pytest.approx(0.0, abs=1e-6)
    assert "Gradient alignment A" in report.to_markdown()
    assert type(report).from_dict(report.to_dict()) == report
    old = {k: v for k, v in report.to_dict().items() if "alignment" not in k}
    assert type(report).from_dict(old).mean_alignment is None  # reports saved before A


def test_skipped_steps_leave_alignment_out():
    rec = ProbeRecorder(3, 2)
    g = torch.eye(2)
    rec.record(g, g.sum(0))
    rec.record(g, finite=False)
    rec.record(torch.stack([g[0], g[0]]), g[0])
    stats = aggregate_window(**rec.buffers())
    assert float(stats.mean_alignment) == pytest.approx(0.5, abs=1e-6)
