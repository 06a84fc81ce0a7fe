"""PINNModule's pieces: strategy adoption, the parameter layout, the step record, checkpoints."""

from __future__ import annotations

import copy
import gc

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from lightning_pinn import PINNModule
from lightning_pinn._layout import ParameterLayout
from lightning_pinn.diagnostics import loss_norms
from lightning_pinn.module import StepRecord
from lightning_pinn.strategies import (
    AdapterStrategy,
    GradNormRule,
    NoneStrategy,
    ReweightStrategy,
    SurgeryStrategy,
)

NAMES = ("residual", "boundary")


class _Toy(PINNModule):
    def losses(self, batch):
        u = self(batch)
        return {"residual": (u - 1).pow(2).mean(), "boundary": u.pow(2).mean() * self.coef}


def _toy(**kwargs) -> _Toy:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
    module = _Toy(net, loss_names=NAMES, **kwargs)
    module.coef = nn.Parameter(torch.tensor(2.0))
    return module


def _fit(module: PINNModule, steps: int = 3, **trainer_kwargs) -> L.Trainer:
    data = [torch.rand(16, 4) for _ in range(steps)]
    trainer = L.Trainer(
        max_steps=steps,
        logger=trainer_kwargs.pop("logger", False),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=None))
    return trainer


# ------------------------------------------------------------------------ adoption
def test_strategy_object_is_bound_and_kept():
    rule = GradNormRule(every=5)
    strategy = AdapterStrategy(rank=2, routing="shared", rule=rule)
    module = _toy(strategy=strategy)
    assert module.strategy is strategy and strategy.num_losses == 2 and rule.num_losses == 2
    assert module.strategy_name == "adapters" and module.has_adapters
    assert module.model.rank == 2
    assert module.hparams["strategy"] == "adapters"


@pytest.mark.parametrize(
    ("name", "cls"),
    [("none", NoneStrategy), ("reweight", ReweightStrategy), ("adapters", AdapterStrategy)],
)
def test_name_is_the_object_with_defaults(name, cls):
    module = _toy(strategy=name)
    assert type(module.strategy) is cls
    assert module.strategy.options() == cls(len(NAMES)).options()


def test_strategy_bound_to_another_k_is_rejected():
    with pytest.raises(ValueError, match="bound to num_losses=3"):
        _toy(strategy=ReweightStrategy(3))


def test_flat_options_configure_later_switches_by_name():
    module = _toy(rank=2, aggregator="mgda")
    assert isinstance(module.strategy, NoneStrategy)
    module.set_strategy("adapters", routing="shared")
    assert module.strategy.rank == 2 and module.strategy.routing == "shared"
    module.set_strategy("surgery")
    assert module.strategy.aggregator == "mgda"


def test_the_module_keeps_no_copy_of_the_active_options():
    module = _toy(strategy=AdapterStrategy(rank=3))
    assert not hasattr(module, "strategy_options")
    module.strategy.routing = "shared"  # the object is the only source
    assert module.strategy.options()["routing"] == "shared"


def test_set_strategy_object_and_errors():
    module = _toy()
    target = SurgeryStrategy(aggregator="mgda", blockwise=True)
    module.set_strategy(target)
    assert module.strategy is target and target.num_losses == 2
    with pytest.raises(ValueError, match=r"unknown strategy option\(s\) \['rnak'\]"):
        module.set_strategy("adapters", rnak=4)
    with pytest.raises(ValueError, match="were given with the strategy object"):
        module.set_strategy(AdapterStrategy(), rank=2)
    with pytest.raises(ValueError, match=r"unknown strategy option\(s\) \['emma'\].*'rank'"):
        _toy(emma=0.9)


# -------------------------------------------------------------------------- layout
def test_layout_puts_the_network_first_and_excludes_adapters():
    module = _toy(strategy="adapters")
    layout = module._parameter_layout()
    assert isinstance(layout, ParameterLayout)
    assert layout.shared[-1] is module.coef
    n_net = sum(p.numel() for p in module.model.shared_parameters())
    assert layout.blocks == [slice(0, n_net), slice(n_net, n_net + 1)]
    adapter_ids = {id(p) for k in range(2) for p in module.adapter_parameters(k)}
    assert adapter_ids and not adapter_ids & {id(p) for p in layout.shared}
    assert layout.numel == n_net + 1
    module.refresh_parameters()
    assert module._parameter_layout() is not layout


# -------------------------------------------------------------------------- record
def test_step_record_is_published_every_step():
    module = _toy(strategy="reweight")
    assert module.last_record is None and module.loss_jacobian is None
    _fit(module, steps=3)
    record = module.last_record
    assert isinstance(record, StepRecord)
    assert record.step == module.train_steps == 3 and record.finite
    p = sum(x.numel() for x in module.shared_parameters())
    assert record.jacobian.shape == (2, p) and record.update.shape == (p,)
    assert record.losses.shape == (2,) and record.weights.shape == (2,)
    assert module.loss_jacobian is record.jacobian and module.loss_weights is record.weights


def test_logged_grad_norms_are_the_statistics_norms_for_huge_rows(tmp_path):
    class Huge(PINNModule):
        def losses(self, batch):
            w = self.model.weight
            return {"residual": 1e30 * w.sum(), "boundary": -1e30 * w[0, :2].sum()}

    module = Huge(nn.Linear(64, 1, bias=False), loss_names=NAMES)
    trainer = _fit(module, steps=1, log_every_n_steps=1, logger=CSVLogger(tmp_path))
    norms = loss_norms(module.loss_jacobian)
    assert torch.isfinite(module.loss_jacobian.pow(2).sum(1)).logical_not().all()  # naive: inf
    for k, name in enumerate(NAMES):
        logged = trainer.callback_metrics[f"grad_norm/{name}"]
        assert torch.isfinite(logged)
        assert torch.equal(logged, norms[k])
    torch.testing.assert_close(norms, torch.tensor([8e30, 1e30 * 2**0.5]))


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_of_a_strategy_object():
    module = _toy(strategy=AdapterStrategy(rank=2, rule=GradNormRule(every=3)), rank=5)
    _fit(module, steps=2)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    fresh = _toy()
    fresh.on_load_checkpoint(checkpoint)
    assert fresh.has_adapters and fresh.model.rank == 2
    assert fresh.strategy.options() == module.strategy.options()
    assert fresh.strategy.rule.state_dict()["step"] == 2
    fresh.set_strategy("adapters")  # the flat options travel too
    assert fresh.strategy.rank == 5


def test_checkpoint_of_the_previous_format_still_loads():
    legacy = {
        "lightning_pinn": {
            "strategy": "adapters",
            "strategy_options": {
                "reweighting": "gradnorm",
                "reweighting_options": {},
                "rank": 2,
                "alpha": None,
                "routing": "own",
                "adapter_lr_mult": 0.1,
                "target": None,
                "adapter_seed": 0,
                "aggregator": "upgrad",
                "blockwise": True,
                "surgery_seed": 0,
                "num_losses": 2,
            },
            "strategy_state": {"rule": "gradnorm", "rule_state": GradNormRule(2).state_dict()},
            "has_adapters": True,
            "train_steps": 7,
            "skipped_steps": 0,
        }
    }
    module = _toy()
    module.on_load_checkpoint(legacy)
    assert module.strategy_name == "adapters" and module.model.rank == 2
    assert module.train_steps == 7
    module.set_strategy("surgery")
    assert module.strategy.blockwise


def test_checkpoint_with_an_unregistered_strategy_fails_clearly():
    module = _toy()
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    checkpoint["lightning_pinn"]["strategy"] = "mine"
    with pytest.raises(ValueError, match="strategy 'mine', which is not registered"):
        _toy().on_load_checkpoint(checkpoint)


def test_adapters_strategy_layers_wide_by_default_every_layer_on_request():
    """strategy="adapters" keeps the map's layers ("wide": not the 8 -> 1 head at rank 4),
    falls back to every layer on a trunk with none that wide (it raised before), and
    target=None adapts every layer, as PerLossAdapter does by default."""
    assert _toy(strategy="adapters").model.adapted_layer_names == ["0", "2"]
    assert _toy(strategy="adapters", target=None).model.adapted_layer_names == ["0", "2", "4"]
    tiny = _Toy(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)), loss_names=NAMES,
                strategy="adapters")  # fmt: skip
    tiny.coef = nn.Parameter(torch.tensor(2.0))
    assert tiny.model.adapted_layer_names == ["0", "2"]
    _fit(tiny, steps=2)
    assert tiny.train_steps == 2


class _Plain(PINNModule):
    def losses(self, batch):
        u = self(batch)
        return {"residual": (u - 1).pow(2).mean(), "boundary": u.pow(2).mean()}


def _plain_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def test_load_from_checkpoint_says_the_network_must_be_passed(tmp_path):
    module = _Plain(_plain_net(), loss_names=NAMES, strategy="reweight")
    trainer = _fit(module, steps=2, default_root_dir=tmp_path)
    path = tmp_path / "plain.ckpt"
    trainer.save_checkpoint(path)
    # before: "PINNModule.__init__() missing 1 required positional argument: 'model'"
    with pytest.raises(TypeError, match=r"_Plain.load_from_checkpoint needs the network.*model="):
        _Plain.load_from_checkpoint(path)
    loaded = _Plain.load_from_checkpoint(path, model=_plain_net())
    x = torch.rand(5, 4)
    assert loaded.strategy_name == "reweight"
    torch.testing.assert_close(loaded(x), module(x))


@pytest.mark.parametrize("flag", ["fp32_losses", "tune_allocator"])
def test_boolean_flags_refuse_strings(flag):
    # before: bool("no") is True, so fp32_losses="no" kept fp32 losses on
    with pytest.raises(TypeError, match=f"{flag} must be True or False, got 'no'"):
        _Plain(_plain_net(), loss_names=NAMES, **{flag: "no"})


def test_adapters_wider_than_every_layer_resume_from_their_checkpoint(tmp_path):
    """The default target accepts any rank; the checkpoint names the layers it chose, and
    restoring them must not meet the explicit-target rank check (found by the property test
    of tests/integration/test_reliability.py: rank 99 on an 8-wide trunk)."""
    module = _Plain(_plain_net(), loss_names=NAMES)
    module.set_strategy("adapters", rank=99)
    trainer = _fit(module, steps=2, default_root_dir=tmp_path)
    path = tmp_path / "wide.ckpt"
    trainer.save_checkpoint(path)
    loaded = _Plain.load_from_checkpoint(path, model=_plain_net())
    assert loaded.model.adapted_layer_names == module.model.adapted_layer_names == ["0", "2"]
    x = torch.rand(5, 4)
    torch.testing.assert_close(loaded(x), module(x))


def test_a_loss_named_total_is_refused():
    # before: loss/total, the logged sum, silently overwrote (or was overwritten by) it
    with pytest.raises(ValueError, match="'total', which is reserved"):
        _Plain(_plain_net(), loss_names=("total", "boundary"))


def test_one_strategy_object_is_not_shared_by_two_live_modules():
    """A strategy keeps per-run state (EMA weights, counters): before, a ReweightStrategy
    reused across the modules of a sweep was shared by their runs in silence. The second
    module now gets a copy, with a warning."""
    strategy = ReweightStrategy()
    first = _Plain(_plain_net(), loss_names=NAMES, strategy=strategy)
    with pytest.warns(UserWarning, match="already drives another module; this module gets a"):
        second = _Plain(_plain_net(), loss_names=NAMES, strategy=strategy)
    assert second.strategy is not strategy and second.strategy_name == "reweight"
    assert first.strategy is strategy
    other = _Plain(_plain_net(), loss_names=NAMES)
    with pytest.warns(UserWarning, match="already drives another module"):
        other.set_strategy(strategy)
    assert other.strategy is not strategy
    first.set_strategy(strategy)  # its own module adopts it again, no copy
    assert first.strategy is strategy
    del first
    gc.collect()
    assert _Plain(_plain_net(), loss_names=NAMES, strategy=strategy).strategy is strategy
    assert copy.deepcopy(strategy)._owner is None  # a copy belongs to no module
