"""The user-project example runs as a script with a tiny budget, logging to W&B offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "custom_pde"


def test_exact_solution_satisfies_the_pde():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import torch
        from model import EPS, B, exact_solution, source

        from lightning_pinn.operators import gradient
    finally:
        sys.path.remove(str(EXAMPLE))
    xy = torch.rand(256, 2, dtype=torch.float64, requires_grad=True)
    u = exact_solution(xy)
    du = gradient(u, xy)
    lap = gradient(du[:, :1], xy)[:, :1] + gradient(du[:, 1:2], xy)[:, 1:2]
    residual = -EPS * lap + B[0] * du[:, :1] + B[1] * du[:, 1:2] - source(xy)
    assert residual.abs().max() < 1e-10
    edge = torch.tensor([[0.0, 0.3], [1.0, 0.7], [0.2, 0.0], [0.9, 1.0]], dtype=torch.float64)
    assert exact_solution(edge).abs().max() < 1e-12


@pytest.mark.slow
def test_custom_pde_script_runs_offline(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "train.py"),
            "--max-steps",
            "10",
            "--points",
            "64",
            "--out",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "relative L2 error" in proc.stdout and "regime:" in proc.stdout
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("files/media/table/conflict/report_table_*.table.json"))
    assert (tmp_path / "conflict_report.md").is_file()
