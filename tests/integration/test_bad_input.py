"""One test per bad-input case of docs/errors.md, asserting the message content."""

import lightning as L
import pytest
import torch
from torch import nn

from lightning_pinn import ConflictCallback, PerLossAdapter, PINNModule, problems
from lightning_pinn.run import RunConfig


def _p():
    return problems.get("burgers", n_residual=32, n_initial=8, n_boundary=8)


class _Custom(PINNModule):
    def __init__(self, fn, **kw):
        super().__init__(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)), **kw)
        self.fn = fn

    def losses(self, batch):
        return self.fn(self, batch)


def _fit(module, steps=2, callbacks=()):
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=list(callbacks),
    )
    trainer.fit(module, datamodule=_p().datamodule())


def _ok(m, b):
    u = m(b["residual"])
    return {
        "residual": u.pow(2).mean(),
        "initial": m(b["initial"]).pow(2).mean(),
        "boundary": m(b["boundary"]).pow(2).mean(),
    }


NAMES = ("residual", "initial", "boundary")


def test_losses_keys_differ_from_loss_names():
    def bad(m, b):
        out = _ok(m, b)
        out["bc"] = out.pop("boundary")
        return out

    with pytest.raises(ValueError, match=r"missing: \['boundary'\], unexpected: \['bc'\]"):
        _fit(_Custom(bad, loss_names=NAMES))


def test_losses_not_a_dict():
    with pytest.raises(TypeError, match="must return a dict"):
        _fit(_Custom(lambda m, b: list(_ok(m, b).values()), loss_names=NAMES))


def test_non_scalar_loss():
    def bad(m, b):
        out = _ok(m, b)
        out["residual"] = m(b["residual"]).pow(2)
        return out

    with pytest.raises(ValueError, match=r"loss 'residual' must be a scalar, got shape \(32, 1\)"):
        _fit(_Custom(bad, loss_names=NAMES))


def test_non_tensor_loss():
    def bad(m, b):
        out = _ok(m, b)
        out["initial"] = 0.5
        return out

    with pytest.raises(TypeError, match="loss 'initial' must be a scalar torch.Tensor, got float"):
        _fit(_Custom(bad, loss_names=NAMES))


def test_complex_or_integer_loss_is_refused_not_cast():
    """A complex loss used to be cast to its real part (and trained on that) in silence."""

    def complex_loss(m, b):
        out = _ok(m, b)
        out["residual"] = out["residual"].to(torch.complex64)
        return out

    def integer_loss(m, b):
        out = _ok(m, b)
        out["initial"] = torch.tensor(1)
        return out

    with pytest.raises(TypeError, match=r"loss .residual. must be a real floating.*complex64"):
        _fit(_Custom(complex_loss, loss_names=NAMES))
    with pytest.raises(TypeError, match=r"loss 'initial' must be a real floating-point.*int64"):
        _fit(_Custom(integer_loss, loss_names=NAMES))


def test_loss_without_parameter_dependence():
    def bad(m, b):
        out = _ok(m, b)
        out["boundary"] = b["boundary"].pow(2).mean()
        return out

    with pytest.raises(ValueError, match="loss 'boundary' does not depend on any trainable"):
        _fit(_Custom(bad, loss_names=NAMES))


def test_conflict_callback_needs_two_losses():
    module = _Custom(
        lambda m, b: {"residual": m(b["residual"]).pow(2).mean()}, loss_names=("residual",)
    )
    with pytest.raises(ValueError, match="needs K >= 2"):
        _fit(module, callbacks=[ConflictCallback(probe_steps=2)])


def test_adapters_on_trunk_without_linear():
    trunk = nn.Sequential(nn.Conv1d(1, 4, 3), nn.Tanh())
    with pytest.raises(ValueError, match="no nn.Linear"):
        PerLossAdapter(trunk, num_losses=3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"strategy": "pcgrad"}, "unknown strategy 'pcgrad'; valid strategies are 'none'"),
        ({"strategy": "surgery", "aggregator": "foo"}, "unknown aggregator 'foo'.*upgrad"),
        ({"strategy": "reweight", "reweighting": "softadapt"}, "softadapt.*gradnorm"),
        ({"on_nonfinite": "ignore"}, "on_nonfinite must be one of"),
        ({"lr": -1.0}, "lr must be a positive finite number"),
        ({"loss_names": ("a", "a")}, "loss_names must be unique"),
    ],
)
def test_bad_module_options(kwargs, match):
    kw = {"loss_names": NAMES, **kwargs}
    with pytest.raises(ValueError, match=match):
        _Custom(_ok, **kw)


def test_unknown_strategy_option_at_switch():
    with pytest.raises(ValueError, match=r"unknown strategy option\(s\) \['rnak'\]"):
        _Custom(_ok, loss_names=NAMES).set_strategy("adapters", rnak=4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tau_dir": 1.5}, "tau_dir"),
        ({"tau_mag": -1.0}, "tau_mag"),
        ({"probe_steps": 0}, "probe_steps"),
    ],
)
def test_bad_callback_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConflictCallback(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"regime_rule": "paper"}, "unknown regime rule 'paper'; valid: design, recipe-map"),
        ({"tau_dir": 1.5}, "tau_dir is a conflict rate"),
        ({"regime_rule": "recipe-map", "tau_cos": 1.0}, "tau_cos is a cosine margin"),
    ],
)
def test_bad_run_rule_or_thresholds_fail_in_validate(kwargs, match):
    # before any training: run_experiment validates the config first
    with pytest.raises(ValueError, match=match):
        RunConfig(**kwargs).validate()


def test_probe_longer_than_run():
    with pytest.raises(ValueError, match="max_steps"):
        _fit(_p().module(), steps=5, callbacks=[ConflictCallback(probe_steps=10)])
    with pytest.raises(ValueError, match="longer than the run"):
        RunConfig(max_steps=5, probe_steps=10).validate()


def test_unknown_problem_and_bad_overrides():
    with pytest.raises(ValueError, match="Did you mean 'burgers'"):
        problems.get("burgers_")
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['viscosity'\]"):
        problems.get("burgers", viscosity=0.1)
    with pytest.raises(TypeError, match="n_residual=.*expected int"):
        problems.get("burgers", n_residual=10.5)
    with pytest.raises(ValueError, match="nu must be > 0"):
        problems.get("burgers", nu=-1.0)


def test_not_a_module():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        PINNModule(lambda x: x, loss_names=NAMES)


def test_metric_shape_mismatch():
    from lightning_pinn import RelativeL2Error

    with pytest.raises(ValueError, match="same shape"):
        RelativeL2Error().update(torch.zeros(2, 1), torch.zeros(3, 1))
