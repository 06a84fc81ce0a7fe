"""ConflictCallback(escalate=True) in a run: arguments, setup checks, the switch and resume.

The Reprober's escalation itself is tested in test_reprobe.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _support import tiny_burgers, tiny_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn import ConflictCallback
from lightning_pinn.optim import LBFGSPhase

PROBE, WINDOW = 6, 4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"escalate": 1}, "escalate must be True or False"),
        ({"escalate": True, "auto_switch": False}, "auto_switch"),
        ({"escalate": True, "trial_steps": 2}, "pass one"),
        ({"escalate": True, "reprobe_steps": 0}, "reprobe_steps"),
        ({"escalate": True, "interventions": {"magnitude": "adapters"}}, "nothing to escalate"),
    ],
)
def test_bad_escalation_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConflictCallback(probe_steps=4, **kwargs)


def test_escalation_starts_from_the_magnitude_regimes_intervention():
    cb = _callback(interventions={"magnitude": "surgery", "directional": "adapters"})
    module = _fit(PROBE + WINDOW + 2, cb)
    assert cb.report.strategy == "surgery"
    (event,) = cb.report.reprobes
    assert event["strategy"] == "surgery" and event["escalated"] is True
    assert module.strategy_name == "adapters"


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
