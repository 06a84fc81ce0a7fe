"""Optimiser phases without a Trainer: the warm-up/decay schedule, first-order optimizers by
name (SOAP included), the L-BFGS phase's options and its saved state."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_pinn.optim import (
    LBFGSPhase,
    LBFGSRun,
    WarmupExponential,
    WarmupExponentialLR,
    build_first_order,
    first_order_names,
)


def test_schedule_values_warmup_then_exponential_decay():
    s = WarmupExponential(warmup_steps=4, decay_rate=0.5, decay_steps=10)
    assert [s.factor(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s.factor(4) == 1.0  # the decay counts from the end of the warm-up
    assert s.factor(14) == pytest.approx(0.5)
    assert s.factor(9) == pytest.approx(0.5**0.5)  # continuous
    stair = WarmupExponential(warmup_steps=4, decay_rate=0.5, decay_steps=10, staircase=True)
    assert stair.factor(13) == 1.0 and stair.factor(14) == 0.5 and stair.factor(24) == 0.25


def test_schedule_without_warmup_starts_at_full_rate():
    s = WarmupExponential(decay_rate=0.9, decay_steps=1000)
    assert s.factor(0) == 1.0
    assert s.factor(2000) == pytest.approx(0.81)


def test_scheduler_sets_the_optimizer_rate_each_step_for_every_group():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 1e-4}])
    sched = WarmupExponentialLR(opt, WarmupExponential(warmup_steps=2, decay_rate=0.1))
    seen = []
    for _ in range(1003):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx([5e-4, 5e-5])
    assert seen[1] == pytest.approx([1e-3, 1e-4])
    assert seen[1002] == pytest.approx([1e-4, 1e-5])  # 1000 steps after the warm-up: x0.1


def test_scheduler_state_round_trips_and_holds_only_data():
    p = torch.nn.Parameter(torch.ones(1))
    schedule = WarmupExponential(warmup_steps=3, decay_rate=0.5, decay_steps=2)
    opt = torch.optim.SGD([p], lr=1.0)
    sched = WarmupExponentialLR(opt, schedule)
    for _ in range(5):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert "schedule" not in state  # the schedule is configuration, rebuilt by the module
    opt2 = torch.optim.SGD([p], lr=1.0)
    sched2 = WarmupExponentialLR(opt2, schedule)
    sched2.load_state_dict(state)
    opt2.step()
    sched2.step()
    opt.step()
    sched.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(0.5**1.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"warmup_steps": -1}, "warmup_steps must be an integer >= 0"),
        ({"warmup_steps": 2.5}, "warmup_steps"),
        ({"decay_rate": 0.0}, r"decay_rate must be in \(0, 1\]"),
        ({"decay_rate": 1.5}, "decay_rate"),
        ({"decay_steps": 0}, "decay_steps must be an integer >= 1"),
    ],
)
def test_schedule_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WarmupExponential(**kwargs)


def test_first_order_names_and_unknown_name():
    assert first_order_names() == ("adam", "adamw", "sgd", "soap")
    p = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; valid: adam, adamw, sgd"):
        build_first_order("lion", [{"params": [p]}], lr=1e-3)


def test_soap_trains_a_least_squares_problem():
    pytest.importorskip("pytorch_optimizer")
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 1)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    opt = build_first_order("soap", [{"params": list(lin.parameters())}], lr=3e-2)
    assert type(opt).__name__ == "SOAP"
    first = None
    for _ in range(30):
        loss = (lin(x) - y).pow(2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"after": -1}, "after must be an integer >= 0"),
        ({"after": 10, "max_iter": 0}, "max_iter must be an integer >= 1"),
        ({"after": 10, "lr": 0.0}, "lr must be a finite number > 0"),
        ({"after": 10, "history_size": 0}, "history_size"),
        ({"after": 10, "line_search": "armijo"}, "line_search must be 'strong_wolfe' or None"),
        ({"after": 10, "record_every": 0}, "record_every"),
        ({"after": 10, "stall_steps": 0}, "stall_steps"),
        ({"after": 10, "tolerance_grad": -1.0}, "tolerance_grad"),
    ],
)
def test_lbfgs_phase_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LBFGSPhase(**kwargs)


def test_lbfgs_phase_placed_after_max_steps_is_an_error():
    phase = LBFGSPhase(after=100)
    phase.check_fits(101)
    phase.check_fits(-1)  # no max_steps: unbounded
    with pytest.raises(ValueError, match=r"after=.*below 100 or raise Trainer\(max_steps"):
        phase.check_fits(100)


def test_lbfgs_phase_builds_strong_wolfe_lbfgs():
    p = torch.nn.Parameter(torch.tensor([1.5, -0.5], dtype=torch.float64))
    opt = LBFGSPhase(after=0, max_iter=20).build([p])
    assert isinstance(opt, torch.optim.LBFGS)
    assert opt.param_groups[0]["line_search_fn"] == "strong_wolfe"

    def closure():
        opt.zero_grad()
        loss = (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2  # Rosenbrock
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    assert torch.allclose(p, torch.ones(2, dtype=torch.float64), atol=1e-6)


def test_lbfgs_run_freezes_a_copy_counts_stalls_and_round_trips():
    run = LBFGSRun()
    assert not run.started
    batch = {"residual": torch.rand(4, 1)}
    run.start(7, batch, torch.tensor([1.0, 2.0]))
    batch["residual"].add_(1.0)  # the data module's later batches do not leak in
    assert run.started and run.started_at == 7
    assert bool((run.batch["residual"] < 1).all())
    for loss in (3.0, 2.0, 2.0, 2.0, 1.0):
        run.observe(loss)
    assert run.stalled == 0 and run.steps == 5
    run.observe(math.nan)
    assert run.stalled == 1
    other = LBFGSRun()
    other.load_state_dict(run.state_dict())
    assert other.state_dict()["steps"] == 6 and torch.equal(other.weights, run.weights)
    assert torch.equal(other.batch["residual"], run.batch["residual"])
