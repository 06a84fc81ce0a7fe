"""Residual-based adaptive distribution (RAD) of the L-BFGS phase's frozen batch: points
gather where the residual is large, the draw is deterministic (resume), the point-by-point
residual is the one the loss averages, and bad RAD input fails before the first step."""

from __future__ import annotations

import pytest
import torch
from _poisson import PoissonData, poisson
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn import problems
from lightning_pinn.data import Box, CollocationDataModule
from lightning_pinn.optim import LBFGSPhase, _phase_step
from lightning_pinn.problems._common import mse

F64 = torch.float64


def test_pointwise_residual_is_what_the_residual_loss_averages():
    problem = problems.get("burgers")
    torch.manual_seed(0)
    module = problem.module()
    batch = problem.datamodule(seed=0, points={"residual": 50}).sample(0)
    loss = module.losses(batch)["residual"]
    r = module.pointwise_residual(batch, "residual", batch["residual"])
    assert r.shape == (50,) and torch.allclose(r.pow(2).mean(), loss.detach(), rtol=1e-5)
    assert module.residual_record is None  # recording is off again


def test_a_problem_whose_losses_hide_the_residual_is_named():
    class Hidden(problems.Problem):  # takes mse itself, not self.residual_loss
        name = "hidden"
        loss_names = ("residual", "boundary")

        def losses(self, module, batch):
            x = batch["residual"]
            return {"residual": mse(module(x)), "boundary": mse(module(batch["boundary"]))}

    module = Hidden().module()
    batch = {"residual": torch.rand(8, 1), "boundary": torch.zeros(2, 1)}
    with pytest.raises(ValueError, match="'hidden' reports no point-by-point residual"):
        module.pointwise_residual(batch, "residual", batch["residual"])


class _Step(problems.ProblemModule):
    """Burgers whose 'residual' is 1 for x > 0.5 and 0 elsewhere (a known hot region)."""

    def pointwise_residual(self, batch, name, points):
        return (points[:, 0] > 0.5).to(points.dtype)


def test_rad_keeps_points_where_the_residual_is_and_draws_deterministically(monkeypatch):
    module = _Step("burgers", lbfgs=LBFGSPhase(after=1, rad_candidates=400, rad_c=0.0))
    dm = CollocationDataModule({"residual": (Box((-1.0, 0.0), (1.0, 1.0)), 40)}, seed=3)
    trainer = type("T", (), {"datamodule": dm, "global_rank": 0})()
    monkeypatch.setattr(type(module), "trainer", property(lambda self: trainer))
    batch = {"residual": torch.zeros(40, 2)}
    first = _phase_step.rad_batch(module, batch, draw=0)["residual"]
    assert first.shape == (40, 2) and bool((first[:, 0] > 0.5).all())  # c = 0: only hot points
    assert torch.equal(first, _phase_step.rad_batch(module, batch, draw=0)["residual"])
    assert not torch.equal(first, _phase_step.rad_batch(module, batch, draw=1)["residual"])
    module.lbfgs = LBFGSPhase(after=1, rad_candidates=400, rad_c=1.0)  # half stays uniform
    mixed = _phase_step.rad_batch(module, batch, draw=0)["residual"]
    assert 0 < int((mixed[:, 0] <= 0.5).sum()) < 20


def test_rad_in_a_run_redraws_and_resumes_exactly(tmp_path, tiny_trainer):
    def run(out, steps, ckpt_path=None, every=None):
        torch.manual_seed(0)
        problem = problems.get("burgers")
        phase = LBFGSPhase(after=6, max_iter=2, rad_candidates=64, rad_every=3)
        module = problem.module(lbfgs=phase)
        dm = problem.datamodule(seed=0, points={"residual": 16, "initial": 8, "boundary": 8})
        callbacks = []
        if every is not None:
            callbacks.append(
                ModelCheckpoint(out, every_n_train_steps=every, save_top_k=-1, save_last=False)
            )
        tiny_trainer(steps, callbacks).fit(module, dm, ckpt_path=ckpt_path)
        return module

    whole = run(tmp_path / "a", 16)
    assert whole.lbfgs_run.rad_draws == 3  # at the switch (draw 0), then every 3 steps
    run(tmp_path / "b", 11, every=11)
    ckpt = next((tmp_path / "b").glob("*step=11.ckpt"))
    resumed = run(tmp_path / "c", 16, ckpt_path=ckpt)
    assert resumed.lbfgs_run.rad_draws == 3
    assert torch.equal(resumed.lbfgs_run.batch["residual"], whole.lbfgs_run.batch["residual"])
    for p, q in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)


def test_rad_draws_float64_points_under_64_true(tiny_trainer):
    """The candidates are sampled in float32; under precision="64-true" the adaptive batch
    takes the dtype of the batch it replaces (the loop's float64)."""
    torch.manual_seed(0)
    problem = problems.get("burgers")
    module = problem.module(lbfgs=LBFGSPhase(after=3, max_iter=2, rad_candidates=64))
    dm = problem.datamodule(seed=0, points={"residual": 16, "initial": 8, "boundary": 8})
    tiny_trainer(6, precision="64-true").fit(module, dm)
    assert module.lbfgs_run.rad_draws == 0  # drawn once, at the switch
    assert {t.dtype for t in module.lbfgs_run.batch.values()} == {F64}
    assert {p.dtype for p in module.parameters()} == {F64}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rad_every": 5}, "rad_every=5 re-draws the adaptive batch, which needs rad_candidates"),
        ({"rad_candidates": -1}, "rad_candidates must be an integer >= 0"),
        ({"rad_candidates": 10, "rad_k": -1.0}, "rad_k must be a finite number >= 0"),
        ({"rad_candidates": 10, "rad_set": ""}, "rad_set must name a point set"),
    ],
)
def test_bad_rad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LBFGSPhase(after=1, **kwargs)


def test_bad_rad_input_fails_before_the_first_step(tiny_trainer):
    problem = problems.get("burgers")
    dm = problem.datamodule(seed=0, points={"residual": 16, "initial": 8, "boundary": 8})
    few = problem.module(lbfgs=LBFGSPhase(after=2, rad_candidates=8))
    with pytest.raises(ValueError, match="rad_candidates=8 is below the 16 points"):
        tiny_trainer(4).fit(few, dm)
    assert few.train_steps == 0
    unknown = problem.module(lbfgs=LBFGSPhase(after=2, rad_candidates=64, rad_set="interior"))
    with pytest.raises(ValueError, match="rad_set='interior' names no point set"):
        tiny_trainer(4).fit(unknown, dm)
    plain = poisson(lbfgs=LBFGSPhase(after=2, rad_candidates=64))  # a user PINNModule
    with pytest.raises(ValueError, match="has no pointwise_residual"):
        tiny_trainer(4).fit(plain, PoissonData(16))
    data = problem.module(lbfgs=LBFGSPhase(after=2, rad_candidates=64))
    with pytest.raises(ValueError, match="needs a lightning_pinn.data.CollocationDataModule"):
        tiny_trainer(4).fit(data, PoissonData(16))


def test_the_documented_custom_problem_gives_pointwise_residuals(monkeypatch):
    """docs/own_problem.md's registry example routes its residual through residual_loss, so
    RAD works on it as documented."""
    import re
    from pathlib import Path

    from lightning_pinn.problems import _registry

    # the example registers a problem: keep it out of the registry other tests iterate over
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))

    text = (Path(__file__).parents[2] / "docs" / "own_problem.md").read_text()
    section = text[text.index("## 2. Add a `Problem`") : text.index("## 3.")]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace: dict = {}
    exec(compile(block, "own_problem.md", "exec"), namespace)
    module, datamodule = namespace["module"], namespace["datamodule"]
    batch = datamodule.sample(0)
    r = module.pointwise_residual(batch, "residual", batch["residual"])
    loss = module.losses(batch)["residual"].detach()
    assert r.shape == (64,) and torch.allclose(r.pow(2).mean(), loss, rtol=1e-5)
