"""``finite_check="deferred"``: a non-finite step never reaches the weights, with no host read
(no synchronisation) on the steps in between checks."""

import math

import lightning as L
import pytest
import torch
from _support import tiny_burgers as _problem
from _support import tiny_trainer

from lightning_pinn._deferred import CHECK_EVERY
from lightning_pinn.problems import ProblemModule
from lightning_pinn.strategies import FixedRule, GradNormRule, ReweightStrategy


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _opt_state(trainer):
    opt = trainer.optimizers[0]
    return {
        (id(p), key): v.clone()
        for p, s in opt.state.items()
        for key, v in s.items()
        if isinstance(v, torch.Tensor)
    }


class _NaNAt(ProblemModule):
    def __init__(self, at, **kw):
        super().__init__(_problem(), **kw)
        self.at = set(at)

    def losses(self, batch):
        out = super().losses(batch)
        if self.train_steps in self.at:
            out["initial"] = out["initial"] * math.nan
        return out


class _Watch(L.Callback):
    """Weights and optimizer state around every step."""

    def __init__(self):
        self.before, self.after = {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before[pl_module.train_steps] = (_state(pl_module), _opt_state(trainer))

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.after[pl_module.train_steps - 1] = (_state(pl_module), _opt_state(trainer))


def _fit(module, steps, callbacks=()):
    trainer = tiny_trainer(steps, callbacks, log_every_n_steps=1000, deterministic=True)
    trainer.fit(module, datamodule=_problem().datamodule(seed=1))
    return trainer


def test_deferred_skip_leaves_weights_and_optimizer_untouched():
    module = _NaNAt({5, 6}, finite_check="deferred", on_nonfinite="skip")
    watch = _Watch()
    trainer = _fit(module, 12, [watch])
    assert module._finite_deferred
    assert trainer.optimizers[0].defaults["fused"]
    for step in (5, 6):  # the steps whose losses were NaN: nothing moved
        (w0, o0), (w1, o1) = watch.before[step], watch.after[step]
        assert all(torch.equal(w0[k], w1[k]) for k in w0)
        assert o0.keys() == o1.keys() and all(torch.equal(o0[k], o1[k]) for k in o0)
    (w0, _), (w1, _) = watch.before[7], watch.after[7]
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)  # a finite step trains
    assert module.skipped_steps == 2  # read at the last step (a check step)
    assert module.consecutive_skips == 0
    assert all(torch.isfinite(v).all() for v in _state(module).values())


def test_deferred_steps_read_nothing_on_the_host(monkeypatch):
    """Between check steps the step code never turns a tensor into a Python value."""
    module = _NaNAt({4}, finite_check="deferred", on_nonfinite="skip")
    reads = []
    counting = {"on": False}

    def spy(name):
        original = getattr(torch.Tensor, name)

        def wrapped(self, *args, **kwargs):
            if counting["on"]:
                reads.append(name)
            return original(self, *args, **kwargs)

        return wrapped

    for name in ("__bool__", "item", "tolist", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, spy(name))

    class Count(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            counting["on"] = 2 <= pl_module.train_steps < 18  # steps 3..18: deferred

        def on_train_batch_end(self, trainer, pl_module, *args):
            counting["on"] = False

    _fit(module, 20, [Count()])
    assert reads == []
    assert module.skipped_steps == 1


def test_deferred_matches_every_step_on_a_finite_run():
    def run(check):
        L.seed_everything(0)
        module = _problem().module(lr=3e-3, finite_check=check)
        _fit(module, 15)
        return _state(module)

    a, b = run("every_step"), run("deferred")
    for k in a:  # fused and single-tensor Adam: equal up to rounding
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_deferred_raise_names_the_step_and_keeps_weights():
    module = _NaNAt({3}, finite_check="deferred")  # on_nonfinite="raise"
    watch = _Watch()
    with pytest.raises(FloatingPointError, match=r"training step 4 .*deferred"):
        _fit(module, 30, [watch])
    w0, _ = watch.before[3]
    w1, _ = watch.after[3]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert all(torch.isfinite(v).all() for v in _state(module).values())


def test_deferred_too_many_skips_stops_at_the_next_check():
    module = _NaNAt(set(range(2, 200)), finite_check="deferred", on_nonfinite="skip")
    module.max_consecutive_skips = 10
    with pytest.raises(FloatingPointError, match="in a row"):
        _fit(module, CHECK_EVERY + 20)
    assert module.train_steps == CHECK_EVERY - 1  # read at the first check step
    assert all(torch.isfinite(v).all() for v in _state(module).values())


def test_a_refresh_step_checks_on_the_host_so_the_rule_state_stays_finite():
    rule = GradNormRule(every=5)
    strategy = ReweightStrategy(rule=rule)
    module = _NaNAt({5}, strategy=strategy, finite_check="deferred", on_nonfinite="skip")
    assert strategy.stateful_update()  # the first call refreshes
    _fit(module, 12)
    assert torch.isfinite(module.strategy.rule.weights).all()
    assert module.skipped_steps == 1


def test_stateful_update_by_strategy():
    assert not ReweightStrategy(rule=FixedRule(weights=[1.0, 2.0])).stateful_update()
    rule = GradNormRule(num_losses=2, every=3)
    assert rule.refreshes_next()
    rule(torch.ones(2), torch.ones(2), torch.ones(2, 4))
    assert not rule.refreshes_next()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"finite_check": "sometimes"}, "finite_check must be one of"),
        ({"finite_check": "deferred", "optimizer": "soap"}, "fused torch optimizer"),
    ],
)
def test_bad_finite_check(options, match):
    with pytest.raises(ValueError, match=match):
        _problem().module(**options)


def test_auto_stays_every_step_on_cpu():
    module = _problem().module()
    _fit(module, 3)
    assert module.finite_check == "auto" and not module._finite_deferred
