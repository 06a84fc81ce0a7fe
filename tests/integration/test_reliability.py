"""Issue 17, the module/strategy/callback rows: each test fails without its fix."""

from __future__ import annotations

import itertools
import math
import pickle

import lightning as L
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from lightning_pinn import ConflictCallback, PerLossAdapter, PINNModule
from lightning_pinn.strategies import AdapterStrategy

NAMES = ("residual", "boundary")


class _Toy(PINNModule):
    """Two losses on a tiny MLP; ``bad`` replaces the boundary loss by a faulty one."""

    bad: str | None = None

    def losses(self, batch):
        u = self(batch)
        boundary = u.pow(2).mean()
        if self.bad == "inf":
            boundary = boundary * math.inf
        elif self.bad == "input-only":
            x = batch.clone().requires_grad_(True)
            boundary = x.pow(2).mean()
        elif self.bad == "leaf":
            boundary = torch.tensor(1.0, requires_grad=True)
        return {"residual": (u - 1).pow(2).mean(), "boundary": boundary}


def _net(dtype=torch.float32):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
    return net.to(dtype)


def _toy(bad=None, dtype=torch.float32, net=None, **kwargs) -> _Toy:
    module = _Toy(net if net is not None else _net(dtype), loss_names=NAMES, **kwargs)
    module.bad = bad
    return module


class _Points(torch.utils.data.IterableDataset):
    def __init__(self, dtype=torch.float32):
        self.dtype = dtype

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in itertools.count():
            yield torch.rand(16, 3, generator=g, dtype=self.dtype)


def _trainer(steps, callbacks=(), **kw):
    return L.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **kw,
    )


def _fit(module, steps, callbacks=(), dtype=torch.float32, **kw):
    trainer = _trainer(steps, callbacks, **kw)
    loader = torch.utils.data.DataLoader(_Points(dtype), batch_size=None)
    trainer.fit(module, loader)
    return trainer


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ------------------------------------------------------------------- row 1: skip budget
def test_skip_with_a_loss_that_stays_inf_stops_with_an_error_naming_it():
    module = _toy("inf", on_nonfinite="skip", max_consecutive_skips=5)
    before = _state(module)
    with pytest.raises(FloatingPointError, match=r"5 training steps in a row.*\['boundary'\]"):
        _fit(module, 1000)
    assert module.skipped_steps == 5
    for key, value in _state(module).items():
        assert torch.equal(value, before[key]), key


def test_skipped_steps_count_toward_max_steps():
    module = _toy("inf", on_nonfinite="skip")  # fewer steps than max_consecutive_skips
    batches = []

    class Count(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            batches.append(trainer.global_step)

    with pytest.warns(UserWarning, match="last 7 training steps were skipped"):
        trainer = _fit(module, 7, [Count()])
    assert len(batches) == 7 and trainer.global_step == 7 and module.skipped_steps == 7
    opt = trainer.optimizers[0]
    assert not opt.state  # Adam never saw a gradient: no state, no moments


def test_max_consecutive_skips_is_validated():
    with pytest.raises(ValueError, match="max_consecutive_skips must be a positive integer"):
        _toy(max_consecutive_skips=0)


# -------------------------------------------------------------- row 2: no gradient path
@pytest.mark.parametrize("bad", ["input-only", "leaf"])
def test_a_loss_without_a_path_to_the_parameters_is_refused_at_the_first_step(bad):
    with pytest.raises(ValueError, match=r"\['boundary'\] have no gradient path"):
        _fit(_toy(bad), 3)


# ---------------------------------------------------------- row 3: probe without data
def test_a_probe_of_non_finite_steps_reports_no_diagnosis_and_does_not_switch():
    module = _toy("inf", on_nonfinite="skip")
    every = {"directional": "reweight", "magnitude": "reweight", "low": "reweight"}
    callback = ConflictCallback(probe_steps=10, interventions=every)
    with pytest.warns(UserWarning, match="no diagnosis, no switch"):
        _fit(module, 12, [callback])
    report = callback.report
    assert report is not None and not report.valid and report.finite_steps == 0
    assert "only 0 of 10 probe steps" in report.reason and "No diagnosis" in report.to_markdown()
    assert module.strategy_name == "none"
    assert type(report).from_dict(report.to_dict()) == report


# ------------------------------------------------------------- row 4: adapter rebuild
def test_adapters_rebuilt_with_another_rank_mid_run_and_resumed(tmp_path):
    module = _toy(lr=1e-2)
    _fit(module, 3)
    module.set_strategy("adapters", rank=2)
    trainer = _fit(module, 3)
    x = torch.rand(5, 3)
    before = module(x).detach()
    module.set_strategy("adapters", rank=4)
    assert module.model.rank == 4 and module.strategy.rank == 4
    ranks = [m.rank for m in module.model.trunk.modules() if hasattr(m, "lora_A")]
    assert ranks and set(ranks) == {4}
    torch.testing.assert_close(module(x).detach(), before)  # folded: same function
    trainer = _trainer(3)
    trainer.fit(module, torch.utils.data.DataLoader(_Points(), batch_size=None))
    path = tmp_path / "rank4.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["lightning_pinn"]["adapters"]["rank"] == 4
    fresh = _toy(lr=1e-2)
    _trainer(6).fit(
        fresh, torch.utils.data.DataLoader(_Points(), batch_size=None), ckpt_path=str(path)
    )
    assert fresh.model.rank == 4 and fresh.train_steps == module.train_steps + 3


# ----------------------------------------------------------- row 5: atomic set_strategy
def _snapshot(module):
    return (
        module.strategy_name,
        repr(module.strategy.options()),
        dict(module._switch_defaults),
        module.has_adapters,
        {k: tuple(v.shape) for k, v in module.state_dict().items()},
    )


def test_a_failed_set_strategy_changes_nothing():
    module = _toy()
    before = _snapshot(module)
    with pytest.raises(ValueError, match="no nn.Linear layer matches"):
        module.set_strategy("adapters", target="nomatch")
    assert _snapshot(module) == before
    module.set_strategy("adapters")  # target="nomatch" was not kept
    assert module.has_adapters


# ------------------------------------------------------- row 6: checked before training
class _Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3, 1))

    def forward(self, x):
        return x @ self.w


@pytest.mark.parametrize(
    ("net", "options", "message"),
    [
        (lambda: _Conv(), {}, "no nn.Linear layer matches"),
        (lambda: PerLossAdapter(_net(), num_losses=2), {}, "already a PerLossAdapter"),
        (lambda: _net(), {"reweighting": "softadapt"}, "softadapt"),
    ],
    ids=["no-linear", "already-wrapped", "unknown-rule"],
)
def test_interventions_are_checked_in_setup_before_the_first_step(net, options, message):
    module = _toy(net=net())
    every = {"directional": "adapters", "magnitude": "adapters", "low": "adapters"}
    callback = ConflictCallback(probe_steps=5, interventions=every, strategy_options=options)
    with pytest.raises(ValueError, match=message):
        _fit(module, 10, [callback])
    assert module.train_steps == 0


def test_a_misspelled_callback_strategy_option_is_refused_at_construction():
    with pytest.raises(ValueError, match="rnak"):
        ConflictCallback(probe_steps=5, strategy_options={"rnak": 8})


# ------------------------------------------------------------------- row 8: float64
def test_a_float64_model_trains_and_validates_in_float64():
    module = _toy(dtype=torch.float64, strategy="reweight")
    _fit(module, 3, dtype=torch.float64)
    assert module.loss_jacobian.dtype == torch.float64
    x = torch.rand(8, 3, dtype=torch.float64)
    module.validation_step((x, torch.zeros(8, 1, dtype=torch.float64)), 0)
    assert all(p.dtype == torch.float64 for p in module.parameters())


def test_float64_points_to_a_float32_model_get_a_clear_error():
    with pytest.raises(TypeError, match="points are torch.float64 but the model's parameters"):
        _fit(_toy(), 3, dtype=torch.float64)


# ---------------------------------------------------------------- row 9: predicates
def _first_layer(name, module):
    return name == "0"


def test_a_predicate_target_stays_out_of_the_checkpoint_and_resume_works(tmp_path):
    def make():
        return _toy(strategy="adapters", rank=2, target=lambda name, m: name == "0")

    module = make()
    assert "target" not in module.hparams
    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1)
    _fit(module, 3, [ckpt])
    path = tmp_path / "epoch=0-step=3.ckpt"
    pickle.dumps(torch.load(path, weights_only=True))  # data only
    resumed = make()
    _trainer(5).fit(
        resumed, torch.utils.data.DataLoader(_Points(), batch_size=None), ckpt_path=str(path)
    )
    assert resumed.model.adapted_layer_names == ["0"] and resumed.train_steps == 5


# -------------------------------------------------------------- row 10: bad arguments
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_names": "rb"}, "got the string 'rb'"),
        ({"lr": True}, "lr must be a positive finite number, got True"),
        ({"weight_decay": -1}, "weight_decay must be a finite number >= 0, got -1"),
        ({"weight_decay": math.nan}, "weight_decay must be a finite number >= 0"),
    ],
)
def test_bad_module_arguments_are_refused(kwargs, message):
    kwargs = {"loss_names": NAMES, **kwargs}
    with pytest.raises(ValueError, match=message):
        _Toy(_net(), **kwargs)


def test_infinite_adapter_alpha_is_refused():
    with pytest.raises(ValueError, match="alpha must be positive and finite"):
        PerLossAdapter(_net(), num_losses=2, rank=2, alpha=math.inf)


def test_adapters_skip_frozen_layers_by_default():
    net = _net()
    net[2].requires_grad_(False)
    frozen = net[2].weight.detach().clone()
    module = _toy(net=net, strategy=AdapterStrategy(rank=2, adapter_lr_mult=1.0), lr=1e-2)
    assert module.model.adapted_layer_names == ["0"]
    _fit(module, 5)
    assert torch.equal(module.model.trunk[2].weight, frozen)
    explicit = PerLossAdapter(_net().requires_grad_(False), num_losses=2, rank=2, target=["2"])
    assert explicit.adapted_layer_names == ["2"]  # an explicit target may name frozen layers


# --------------------------------------------------------- row 11: callback reused
def test_a_callback_reused_for_a_second_fit_probes_again():
    callback = ConflictCallback(probe_steps=4, auto_switch=False)
    _fit(_toy(), 6, [callback])
    first = callback.report
    _fit(_toy(lr=1e-2), 6, [callback])
    assert callback.report is not None and callback.report is not first


# ------------------------------------------------------------ property: set_strategy
_CALLS = st.sampled_from(
    [
        ("none", {}),
        ("reweight", {}),
        ("reweight", {"reweighting": "softadapt"}),
        ("adapters", {}),
        ("adapters", {"rank": 2}),
        ("adapters", {"rank": 4, "alpha": 2.0}),
        ("adapters", {"rank": 99}),
        ("adapters", {"target": "nomatch"}),
        ("adapters", {"target": ["2"], "rank": 2}),
        ("adapters", {"rnak": 3}),
        ("surgery", {"aggregator": "nope"}),
    ]
)


def _consistent(module):
    if module.strategy.uses_adapters:
        assert module.has_adapters
    if module.has_adapters:
        config = module._adapter_config
        assert module.model.rank == config["rank"]
        if module.strategy.uses_adapters:
            assert module.strategy.rank == config["rank"]
    checkpoint: dict = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    saved = checkpoint["lightning_pinn"]
    if module.has_adapters:
        assert saved["adapters"]["rank"] == module.model.rank
        assert saved["adapters"]["layers"] == module.model.adapted_layer_names
    fresh = _toy()
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])  # strict: the same layers
    assert fresh.strategy_name == module.strategy_name
    x = torch.rand(4, 3)
    torch.testing.assert_close(fresh(x), module(x))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_CALLS, min_size=1, max_size=5))
def test_set_strategy_sequences_are_all_or_nothing_and_checkpoints_resume(calls):
    module = _toy()
    for name, options in calls:
        before = _snapshot(module)
        try:
            module.set_strategy(name, **options)
        except ValueError:
            assert _snapshot(module) == before
        _consistent(module)
