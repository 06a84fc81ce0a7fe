"""Re-probing after the switch: windows, the step back, the escalation, state."""

from __future__ import annotations

import pytest
import torch

from lightning_pinn import ConflictCallback
from lightning_pinn.callbacks._reprobe import Reprober

MAP = {"directional": "adapters", "magnitude": "reweight", "low": "none"}


class _LBFGSRun:
    started = False


class _Module:
    """What a re-probe reads and calls on the module."""

    num_losses = 2
    train_steps = 0
    lbfgs = None  # no L-BFGS phase

    def __init__(self, strategy: str) -> None:
        self.strategy_name = strategy
        self.calls: list[tuple[str, dict]] = []
        self.lbfgs_run = _LBFGSRun()

    def set_strategy(self, name, **options):
        self.calls.append((name, options))
        self.strategy_name = name


CONFLICT = torch.tensor([[1.0, 0.1], [-1.0, 0.1]])  # directional: cosine < 0 every step
ALIGNED = torch.tensor([[1.0, 0.0], [1.0, 0.1]])  # low conflict, equal norms
IMBALANCED = torch.tensor([[100.0, 0.0], [1.0, 0.1]])  # 2 decades apart, aligned


def _run(reprober, module, rows, start):
    events = []
    for i, jac in enumerate(rows):
        event = reprober.observe(module, jac, jac.sum(0), True, start + i + 1)
        if event is not None:
            events.append(event)
    return events


def _reprober(every=4, window=3):
    return Reprober(every, window, tau_dir=0.5, tau_mag=1.0, interventions=MAP, options={})


def test_windows_end_every_m_steps_and_step_back_only():
    module, rep = _Module("adapters"), _reprober()
    rep.settled_at = 10
    assert _run(rep, module, [CONFLICT] * 4, 10) == [
        {"step": 14, "regime": "directional", "strategy": "adapters", "switched_to": None}
    ]
    assert module.calls == []
    events = _run(rep, module, [CONFLICT] + [IMBALANCED] * 3, 14)
    assert events[0]["regime"] == "magnitude" and events[0]["switched_to"] == "reweight"
    assert module.strategy_name == "reweight"
    events = _run(rep, module, [CONFLICT] * 4, 18)  # never forward again
    assert events[0]["switched_to"] is None and module.strategy_name == "reweight"
    events = _run(rep, module, [ALIGNED] * 4, 22)
    assert events[0]["switched_to"] == "none" and module.calls[-1] == ("none", {})
    assert [e["step"] for e in rep.events] == [14, 18, 22, 26]


def test_only_the_window_is_recorded_and_state_round_trips():
    module, rep = _Module("adapters"), _reprober(every=5, window=2)
    rep.settled_at = 0
    # Steps 1-3 are outside the window: conflict there must not count.
    _run(rep, module, [CONFLICT] * 4, 0)
    state = rep.state_dict()
    again = _reprober(every=5, window=2)
    again.load_state_dict(state)
    events = _run(again, module, [ALIGNED], 4)
    assert events[0]["regime"] == "low" and events[0]["switched_to"] == "none"


def test_no_window_runs_once_an_lbfgs_phase_has_started():
    module, rep = _Module("adapters"), _reprober(every=4, window=3)
    module.lbfgs = object()  # a phase, not started yet: first-order windows decide
    rep.settled_at = 0
    assert [e["step"] for e in _run(rep, module, [CONFLICT] * 4, 0)] == [4]
    # the window of steps 6-8: step 6 is first-order, then the phase starts (step 7)
    assert _run(rep, module, [IMBALANCED] * 2, 4) == []
    module.lbfgs_run.started = True
    # the cut window is dropped, later ones never run: no decision, no step back
    assert _run(rep, module, [IMBALANCED] * 10, 6) == []
    assert rep.recorder is None and module.calls == [] and len(rep.events) == 1


def test_reprobes_stop_at_a_real_modules_lbfgs_phase():
    import lightning as L

    from lightning_pinn import problems
    from lightning_pinn.optim import LBFGSPhase

    problem = problems.get("burgers")
    module = problem.module(strategy="none", lbfgs=LBFGSPhase(after=30, max_iter=2))
    callback = ConflictCallback(probe_steps=10, reprobe_every=5)
    trainer = L.Trainer(
        max_steps=50,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    points = {"residual": 64, "initial": 16, "boundary": 16}
    trainer.fit(module, datamodule=problem.datamodule(points=points))
    # windows end at 15, 20, 25, 30 (the last first-order step); none in the phase
    assert [e["step"] for e in callback.report.reprobes] == [15, 20, 25, 30]
    assert module.train_steps == 50


def test_nothing_before_the_switch_settles():
    rep = _reprober()
    assert _run(rep, _Module("adapters"), [CONFLICT] * 8, 0) == []


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"reprobe_every": 0}, "reprobe_every"),
        ({"reprobe_every": 3, "reprobe_steps": 5}, "longer than"),
        ({"reprobe_steps": 2}, "needs reprobe_every"),
        ({"reprobe_every": 3, "auto_switch": False}, "auto_switch"),
        ({"reprobe_every": 2.5}, "reprobe_every"),
        # a 1-step window could never diagnose (before: accepted, every re-probe invalid)
        ({"reprobe_every": 1}, "re-probe window of 1 step can never diagnose"),
        ({"reprobe_every": 5, "reprobe_steps": 1}, "re-probe window of 1 step"),
        ({"escalate": True, "reprobe_steps": 1}, "re-probe window of 1 step"),
    ],
)
def test_bad_reprobe_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConflictCallback(probe_steps=4, **kwargs)


def test_default_window():
    assert ConflictCallback(probe_steps=4, reprobe_every=10).reprobe_steps == 4
    assert ConflictCallback(probe_steps=40, reprobe_every=10).reprobe_steps == 10


# Escalation (ConflictCallback(escalate=True)): the first window under reweight may step forward.
def _escalating(window=3, **kw):
    kw.setdefault("windows", 1)
    kw.setdefault("step_back", False)
    return Reprober(
        window, window, tau_dir=0.5, tau_mag=1.0, interventions=MAP, options={"rank": 2},
        escalate_to="adapters", **kw,
    )  # fmt: skip


def test_conflict_that_remains_under_reweighting_escalates_once():
    module, rep = _Module("reweight"), _escalating()
    rep.settled_at = 10
    events = _run(rep, module, [CONFLICT] * 3, 10)
    assert events == [
        {
            "step": 13,
            "regime": "directional",
            "strategy": "reweight",
            "switched_to": "adapters",
            "escalated": True,
        }
    ]
    assert module.calls == [("adapters", {"rank": 2})]
    assert Reprober.metrics(events[0])["conflict/reprobe/escalated"] == 1.0
    assert Reprober.metrics(events[0])["conflict/reprobe/step_back"] == 0.0
    # One window only: later conflict changes nothing.
    assert _run(rep, module, [CONFLICT] * 9, 13) == [] and len(module.calls) == 1


def test_conflict_gone_under_reweighting_keeps_reweight_and_never_steps_back():
    module, rep = _Module("reweight"), _escalating()
    rep.settled_at = 0
    events = _run(rep, module, [ALIGNED] * 3, 0)
    assert events[0]["regime"] == "low" and events[0]["switched_to"] is None
    assert module.calls == [] and module.strategy_name == "reweight"


def test_only_reweight_escalates_and_only_the_first_window():
    module, rep = _Module("none"), _escalating()
    rep.settled_at = 0
    assert _run(rep, module, [CONFLICT] * 3, 0)[0]["switched_to"] is None
    # With re-probes every window: the first window decides the escalation, later ones may
    # only step back.
    module, rep = _Module("reweight"), _escalating(windows=None, step_back=True)
    rep.settled_at = 0
    assert _run(rep, module, [ALIGNED] * 3, 0)[0]["switched_to"] == "none"
    module.strategy_name = "reweight"
    assert _run(rep, module, [CONFLICT] * 3, 3)[0]["switched_to"] is None
    assert module.strategy_name == "reweight"


def test_escalation_state_round_trips_mid_window():
    module, rep = _Module("reweight"), _escalating()
    rep.settled_at = 0
    _run(rep, module, [CONFLICT] * 2, 0)
    again = _escalating()
    again.load_state_dict(rep.state_dict())
    assert _run(again, module, [CONFLICT], 2)[0]["escalated"] is True
    done = _escalating()
    done.load_state_dict(again.state_dict())
    assert not done.escalation_pending and done.decided == 1
