"""The Allen–Cahn spectral reference: convergence in dt, correctness at t = 0, the cache."""

import math

import numpy as np
import pytest
import torch

from lightning_pinn.problems import allen_cahn
from lightning_pinn.problems.allen_cahn import (
    AllenCahn,
    AllenCahnSolution,
    cache_dir,
    etdrk4_allen_cahn,
    load_or_solve,
)


def test_halving_dt_changes_the_solution_by_less_than_1e_6() -> None:
    coarse = etdrk4_allen_cahn(dt=1e-3)
    fine = etdrk4_allen_cahn(dt=5e-4, save_every=2)
    np.testing.assert_allclose(fine["t"], coarse["t"])
    u_coarse = np.fft.irfft(coarse["coef"], n=1024, axis=1)
    u_fine = np.fft.irfft(fine["coef"], n=1024, axis=1)
    assert np.abs(u_coarse - u_fine).max() < 1e-6


def test_interpolation_matches_the_initial_condition_and_saved_times() -> None:
    data = etdrk4_allen_cahn(modes=512, dt=2e-3)
    sol = AllenCahnSolution(data)
    x = torch.linspace(-0.9, 0.9, 101, dtype=torch.float64)
    at0 = sol(torch.stack([x, torch.zeros_like(x)], dim=1)).squeeze(1)
    torch.testing.assert_close(at0, x**2 * torch.cos(math.pi * x), atol=1e-4, rtol=0)
    grid_x = torch.tensor(-1 + 2 * np.arange(512) / 512)
    at_half = sol(torch.stack([grid_x, torch.full_like(grid_x, 0.5)], dim=1)).squeeze(1)
    expected = np.fft.irfft(data["coef"][250], n=512)
    assert np.abs(at_half.numpy() - expected).max() < 1e-9
    assert float(at_half.abs().max()) <= 1.0 + 1e-6


def test_cache_file_is_written_once_and_reused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_PINN_CACHE", str(tmp_path))
    monkeypatch.setattr(allen_cahn, "_MEMO", {})
    assert cache_dir() == tmp_path
    first = load_or_solve(modes=256, dt=2e-3)
    files = list(tmp_path.glob("allen_cahn-*.npz"))
    assert len(files) == 1

    def fail(**_: float) -> None:
        raise AssertionError("the solver ran again instead of reading the cache")

    monkeypatch.setattr(allen_cahn, "etdrk4_allen_cahn", fail)
    monkeypatch.setattr(allen_cahn, "_MEMO", {})  # a fresh process: memory cache empty
    second = load_or_solve(modes=256, dt=2e-3)
    np.testing.assert_array_equal(first.coef, second.coef)
    assert list(tmp_path.glob("allen_cahn-*.npz")) == files


def test_problem_reference_uses_the_cached_solution() -> None:
    problem = AllenCahn()
    points = problem.eval_points()[::97]
    values = problem.reference(points)
    assert values.shape == (points.shape[0], 1)
    assert problem.solution() is problem.solution()
    assert float(values.abs().max()) <= 1.0 + 1e-3
