"""ConflictCallback(escalate=True): reweight first, adapters only if the conflict remains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _support import tiny_burgers, tiny_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn import ConflictCallback
from lightning_pinn.callbacks._reprobe import Reprober
from lightning_pinn.optim import LBFGSPhase

MAP = {"directional": "adapters", "magnitude": "reweight", "low": "none"}
CONFLICT = torch.tensor([[1.0, 0.1], [-1.0, 0.1]])  # directional: cosine < 0 every step
ALIGNED = torch.tensor([[1.0, 0.0], [1.0, 0.1]])  # low conflict, equal norms
PROBE, WINDOW = 6, 4


class _Module:
    """What a re-probe reads and calls on the module."""

    num_losses = 2
    train_steps = 0

    def __init__(self, strategy: str) -> None:
        self.strategy_name = strategy
        self.calls: list[tuple[str, dict]] = []

    def set_strategy(self, name, **options):
        self.calls.append((name, options))
        self.strategy_name = name


def _escalating(window=3, **kw):
    kw.setdefault("windows", 1)
    kw.setdefault("step_back", False)
    return Reprober(
        window, window, tau_dir=0.5, tau_mag=1.0, interventions=MAP, options={"rank": 2},
        escalate_to="adapters", **kw,
    )  # fmt: skip


def _run(reprober, module, rows, start):
    events = []
    for i, jac in enumerate(rows):
        event = reprober.observe(module, jac, jac.sum(0), True, start + i + 1)
        if event is not None:
            events.append(event)
    return events


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


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"escalate": 1}, "escalate must be True or False"),
        ({"escalate": True, "auto_switch": False}, "auto_switch"),
        ({"escalate": True, "trial_steps": 2}, "pass one"),
        ({"escalate": True, "reprobe_steps": 0}, "reprobe_steps"),
    ],
)
def test_bad_escalation_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConflictCallback(probe_steps=4, **kwargs)


def test_escalation_window_defaults_to_the_probe():
    assert ConflictCallback(probe_steps=4, escalate=True).reprobe_steps == 4
    assert ConflictCallback(probe_steps=4, escalate=True, reprobe_steps=2).reprobe_steps == 2
    assert ConflictCallback(probe_steps=4).reprobe_steps is None


def _fit(steps, cb, ckpt_path=None, module_kw=None, **trainer_kw):
    torch.manual_seed(0)
    problem = tiny_burgers()
    module, datamodule = problem.module(**(module_kw or {})), problem.datamodule()
    trainer = tiny_trainer(steps, [cb, *trainer_kw.pop("extra", ())], **trainer_kw)
    trainer.fit(module, datamodule, ckpt_path=ckpt_path)
    return module


def _callback(**kw):
    return ConflictCallback(probe_steps=PROBE, escalate=True, reprobe_steps=WINDOW, **kw)


def test_directional_run_reweights_first_then_escalates():
    cb = _callback()
    module = _fit(PROBE + WINDOW + 2, cb)
    assert cb.report.regime == "directional"  # tiny Burgers conflicts from the start
    assert cb.report.strategy == "reweight"  # the first switch
    (event,) = cb.report.reprobes
    assert event["step"] == PROBE + WINDOW and event["strategy"] == "reweight"
    assert event["regime"] == "directional" and event["escalated"] is True
    assert module.strategy_name == "adapters" and module.has_adapters
    assert "escalated to adapters" in cb.report.to_markdown()
    # The same run without escalation switches to adapters at the probe's end.
    plain = ConflictCallback(probe_steps=PROBE)
    _fit(PROBE + 2, plain)
    assert plain.report.strategy == "adapters"


def test_escalation_fails_in_setup_when_the_window_cannot_end():
    with pytest.raises(ValueError, match="before the escalation window"):
        _fit(PROBE + WINDOW, _callback())
    lbfgs = LBFGSPhase(after=PROBE + WINDOW - 1, max_iter=2)
    with pytest.raises(ValueError, match="L-BFGS phase starts at step"):
        _fit(PROBE + WINDOW + 5, _callback(), module_kw={"lbfgs": lbfgs})


def test_resume_inside_the_escalation_window_equals_uninterrupted(tmp_path: Path):
    def run(root: Path, ckpt_path: str | None = None):
        cb = _callback()
        ckpt = ModelCheckpoint(dirpath=root, every_n_train_steps=1, save_top_k=-1)
        module = _fit(PROBE + WINDOW + 3, cb, ckpt_path, extra=[ckpt], enable_checkpointing=True)
        return cb, module

    cb, module = run(tmp_path / "full")
    ckpt = tmp_path / "full" / f"epoch=0-step={PROBE + 2}.ckpt"
    resumed, resumed_module = run(tmp_path / "resumed", str(ckpt))
    assert resumed.report.to_dict() == cb.report.to_dict()
    assert resumed_module.strategy_name == module.strategy_name == "adapters"
    sa, sb = module.state_dict(), resumed_module.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
