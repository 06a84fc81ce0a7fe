"""Real DDP: two CPU processes on the gloo backend."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_pinn import problems
from lightning_pinn.gradients import per_loss_gradients

WORKER = Path(__file__).with_name("ddp_worker.py")


def _launch(tmp_path, strategy, launcher, *extra):
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path), strategy, launcher, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _union_jacobian(tmp_path):
    p = problems.get("burgers", n_residual=128, n_initial=32, n_boundary=32)
    module = p.module()
    module.load_state_dict(torch.load(tmp_path / "init.pt"))
    dm = p.datamodule(seed=0)
    b0, b1 = dm.sample(0, rank=0), dm.sample(0, rank=1)
    union = {k: torch.cat([b0[k], b1[k]]) for k in b0}
    losses = module.losses(union)
    jac, _ = per_loss_gradients([losses[n] for n in module.loss_names], module.shared_parameters())
    return jac


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy,launcher", [("none", "ddp"), ("surgery", "ddp"), ("none", "ddp_spawn")]
)
def test_two_process_ddp_gives_one_jacobian_one_report_one_model(tmp_path, strategy, launcher):
    # "none" auto-switches to adapters after the 4-step probe, so adapters run under DDP too.
    _launch(tmp_path, strategy, launcher)
    j0, j1 = torch.load(tmp_path / "J0.pt"), torch.load(tmp_path / "J1.pt")
    assert torch.equal(j0, j1)
    union = _union_jacobian(tmp_path)
    rel = (j0 - union).norm(dim=1) / union.norm(dim=1)
    assert (rel < 1e-6).all(), rel
    f0, f1 = torch.load(tmp_path / "final0.pt"), torch.load(tmp_path / "final1.pt")
    assert f0.keys() == f1.keys()
    for k in f0:
        assert torch.equal(f0[k], f1[k]), k
    r0 = json.loads((tmp_path / "report0.json").read_text())
    r1 = json.loads((tmp_path / "report1.json").read_text())
    assert r0 is not None and r0 == r1


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["trial", "trial-loader"])
def test_two_process_guarded_switch_gives_one_choice(tmp_path, mode):
    """Both ranks score the candidates alike (all-reduced), choose alike, end alike; also on a
    plain DataLoader, whose batches each rank records and replays."""
    _launch(tmp_path, "none", "ddp", mode)
    r0 = json.loads((tmp_path / "report0.json").read_text())
    r1 = json.loads((tmp_path / "report1.json").read_text())
    assert r0["trial"] and r0["trial"] == r1["trial"]  # scores from each rank's own points
    assert len(r0["trial"]) == 3 and sum(row["chosen"] for row in r0["trial"]) == 1
    assert r0["strategy"] == r1["strategy"] and r0["trial_steps_spent"] == 6
    assert all([d["steps"] for d in row["during"]] == [1] for row in r0["trial"])  # averaged
    f0, f1 = torch.load(tmp_path / "final0.pt"), torch.load(tmp_path / "final1.pt")
    assert f0.keys() == f1.keys()
    for k in f0:
        assert torch.equal(f0[k], f1[k]), k


@pytest.mark.slow
def test_two_process_loss_based_weights_keep_the_ranks_alike(tmp_path):
    """ReLoBRaLo weights from the loss values: each rank used to weight by its own local
    losses, so the two replicas drifted apart in silence (0.0024 after 8 steps). The values
    are now all-reduced with J (one all-reduce), so both ranks see the union's losses."""
    _launch(tmp_path, "reweight", "ddp", "relobralo")
    l0, l1 = torch.load(tmp_path / "losses0.pt"), torch.load(tmp_path / "losses1.pt")
    assert torch.equal(l0, l1)
    p = problems.get("burgers", n_residual=128, n_initial=32, n_boundary=32)
    module = p.module()
    module.load_state_dict(torch.load(tmp_path / "init.pt"))
    dm = p.datamodule(seed=0)
    each = [module.losses(dm.sample(0, rank=r)) for r in (0, 1)]
    mean = torch.stack([(each[0][n] + each[1][n]).detach() / 2 for n in module.loss_names])
    torch.testing.assert_close(l0, mean, rtol=1e-5, atol=1e-7)
    f0, f1 = torch.load(tmp_path / "final0.pt"), torch.load(tmp_path / "final1.pt")
    for k in f0:
        assert torch.equal(f0[k], f1[k]), k


@pytest.mark.slow
def test_two_process_escalation_decides_alike_and_trains_its_adapters_alike(tmp_path):
    """The escalation window reads the all-reduced J, so both ranks escalate (or not) alike;
    adapters it adds mid-run are identical and stay identical on both ranks."""
    _launch(tmp_path, "none", "ddp", "escalate")
    r0 = json.loads((tmp_path / "report0.json").read_text())
    r1 = json.loads((tmp_path / "report1.json").read_text())
    assert r0 == r1 and r0["strategy"] == "reweight"  # tiny Burgers: directional
    (event,) = r0["reprobes"]
    assert event["step"] == 7 and event["strategy"] == "reweight"
    f0, f1 = torch.load(tmp_path / "final0.pt"), torch.load(tmp_path / "final1.pt")
    assert f0.keys() == f1.keys()
    assert any("lora" in k for k in f0) == bool(event.get("escalated"))
    for k in f0:
        assert torch.equal(f0[k], f1[k]), k
