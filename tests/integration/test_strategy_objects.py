"""Strategy objects in training: identical to their string shortcuts, accepted by set_strategy
and by the callback's intervention map; the README example writes no file."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pytest
import torch
from _support import tiny_burgers
from _support import tiny_trainer as _trainer

from lightning_pinn import ConflictCallback
from lightning_pinn.strategies import (
    AdapterStrategy,
    GradNormRule,
    LRARule,
    ReweightStrategy,
    SurgeryStrategy,
)

README = (Path(__file__).parents[2] / "README.md").read_text()


def _train(steps: int = 20, callbacks=(), **module_kwargs) -> dict[str, torch.Tensor]:
    L.seed_everything(0)
    p = tiny_burgers(64, 16, 16)
    module = p.module(**module_kwargs)
    _trainer(steps, callbacks).fit(module, datamodule=p.datamodule(seed=0))
    return module


@pytest.mark.parametrize(
    ("shortcut", "obj"),
    [
        ({"strategy": "reweight"}, lambda: ReweightStrategy()),
        (
            {"strategy": "reweight", "reweighting": "lra", "reweighting_options": {"beta": 0.5}},
            lambda: ReweightStrategy(rule=LRARule(beta=0.5)),
        ),
        ({"strategy": "adapters"}, lambda: AdapterStrategy()),
        (
            {
                "strategy": "adapters",
                "rank": 2,
                "routing": "shared",
                "reweighting_options": {"every": 3},
            },
            lambda: AdapterStrategy(rank=2, routing="shared", rule=GradNormRule(every=3)),
        ),
        (
            {"strategy": "surgery", "aggregator": "mgda", "blockwise": True},
            lambda: SurgeryStrategy(aggregator="mgda", blockwise=True),
        ),
    ],
)
def test_strategy_object_trains_bitwise_like_its_shortcut(shortcut, obj):
    if shortcut["strategy"] == "surgery":
        pytest.importorskip("torchjd")
    by_name = _train(**shortcut).state_dict()
    by_object = _train(strategy=obj()).state_dict()
    assert by_name.keys() == by_object.keys()
    for key in by_name:
        assert torch.equal(by_name[key], by_object[key]), key


def test_unknown_strategy_option_names_the_valid_options():
    with pytest.raises(ValueError, match=r"unknown strategy option\(s\) \['rnak'\].*'rank'"):
        tiny_burgers(64, 16, 16).module(strategy="adapters", rnak=8)


def test_set_strategy_takes_an_object_mid_run():
    target = AdapterStrategy(rank=2, routing="shared", rule=GradNormRule(every=2))

    class Switch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            if pl_module.train_steps == 3:
                pl_module.set_strategy(target)

    module = _train(6, [Switch()])
    assert module.strategy is target and module.has_adapters and module.model.rank == 2
    assert len(module.trainer.optimizers[0].param_groups) == 2
    assert any(p.abs().sum() > 0 for p in module.adapter_parameters(0))  # adapters trained


def test_callback_intervention_map_takes_objects():
    template = AdapterStrategy(rank=2, rule=GradNormRule(every=2))
    every_regime = {r: template for r in ("directional", "magnitude", "low")}
    callback = ConflictCallback(probe_steps=5, interventions=every_regime)
    module = _train(8, [callback])
    assert callback.report is not None and callback.report.strategy == "adapters"
    assert isinstance(module.strategy, AdapterStrategy) and module.model.rank == 2
    assert module.strategy is not template and not template.is_bound  # the map is a template
    assert module.strategy.rule.every == 2


def test_callback_rejects_unregistered_strategy_objects():
    class Mine(ReweightStrategy):
        name = "mine"

    with pytest.raises(ValueError, match="named 'mine', which is not registered"):
        ConflictCallback(interventions={"low": Mine()})


def test_readme_example_leaves_the_working_directory_empty(tmp_path, monkeypatch, capsys):
    (code,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", README, flags=re.S)
        if "ConflictCallback" in block
    ]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip().splitlines()[-1] in ("directional", "magnitude", "low")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
