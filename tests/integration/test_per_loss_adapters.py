"""The per-loss adapter design in the module (issue 15): loss tags, the untagged fallback,
predictions, gradients of the objective, the L-BFGS phase and bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from lightning_pinn import PINNModule, problems
from lightning_pinn._per_loss import evaluate_losses
from lightning_pinn.networks import MLP
from lightning_pinn.optim import LBFGSPhase
from lightning_pinn.strategies import AdapterStrategy


@pytest.fixture
def burgers(tiny_burgers):
    """A tiny Burgers problem."""
    return tiny_burgers()


def _batch(problem):
    dm = problem.datamodule(points={k: 32 for k in problem.point_sets()})
    return dm.sample(0)


def _perturb(module, scale: float = 0.2, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module._all_adapter_parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def _per_loss(problem, **options):
    return problem.module(strategy=AdapterStrategy(rank=2, mode="per_loss", **options))


def _values(module, batch):
    out = evaluate_losses(module, {k: v.clone() for k, v in batch.items()})
    return {k: v.detach() for k, v in out.items()}


def test_loss_k_depends_only_on_the_trunk_and_adapter_k(burgers):
    module = _per_loss(burgers)
    _perturb(module)
    batch = _batch(burgers)
    before = _values(module, batch)
    for j, name_j in enumerate(module.loss_names):
        with torch.no_grad():
            for p in module.adapter_parameters(j):
                p.add_(0.5)
        after = _values(module, batch)
        for name in module.loss_names:
            if name == name_j:
                assert not torch.equal(after[name], before[name])
            else:
                assert torch.equal(after[name], before[name]), (name, name_j)
        before = after


def test_objective_gradient_routes_each_adapter_to_its_loss(burgers):
    module = _per_loss(burgers)
    _perturb(module)
    batch = _batch(burgers)
    weights = torch.tensor([0.5, 2.0, 3.0])
    out = module.losses({k: v.clone() for k, v in batch.items()})
    losses = [out[n] for n in module.loss_names]
    total = sum(w * v for w, v in zip(weights, losses, strict=True))
    for k in range(3):
        params = module.adapter_parameters(k)
        of_total = torch.autograd.grad(total, params, retain_graph=True)
        of_own = torch.autograd.grad(losses[k], params, retain_graph=True)
        for a, b in zip(of_total, of_own, strict=True):
            torch.testing.assert_close(a, weights[k] * b)


class _Poisson(PINNModule):
    """-u'' = π² sin(πx) on [0, 1]; ``tag`` chooses whether the forwards say their loss."""

    tag = True

    def losses(self, batch):
        x = batch["residual"].clone().requires_grad_(True)
        u = self(x, loss="residual") if self.tag else self(x)
        (u_x,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        (u_xx,) = torch.autograd.grad(u_x.sum(), x, create_graph=True)
        r = u_xx + torch.pi**2 * torch.sin(torch.pi * x)
        b = self(batch["boundary"], loss="boundary") if self.tag else self(batch["boundary"])
        return {"residual": r.pow(2).mean(), "boundary": b.pow(2).mean()}


def _poisson(**kwargs) -> _Poisson:
    torch.manual_seed(0)
    trunk = MLP(1, 1, width=8, depth=2)
    strategy = AdapterStrategy(rank=2, mode="per_loss")
    return _Poisson(trunk, loss_names=("residual", "boundary"), strategy=strategy, **kwargs)


_POISSON_BATCH = {"residual": torch.rand(32, 1), "boundary": torch.tensor([[0.0], [1.0]])}


def test_untagged_losses_fall_back_to_one_pass_per_adapter_and_warn_once():
    tagged = _poisson()
    _perturb(tagged)
    untagged = _poisson()
    untagged.load_state_dict(tagged.state_dict())
    untagged.tag = False
    expected = _values(tagged, _POISSON_BATCH)
    with pytest.warns(UserWarning, match="2 forward passes per step"):
        got = _values(untagged, _POISSON_BATCH)
    for name in tagged.loss_names:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once
        again = _values(untagged, _POISSON_BATCH)
    assert again.keys() == expected.keys()


@pytest.mark.parametrize("mode", ["summed", "per_loss"])
def test_function_and_losses_unchanged_at_insertion(burgers, mode):
    module = burgers.module()
    batch = _batch(burgers)
    x = batch["residual"].clone()
    before, u_before = _values(module, batch), module(x)
    module.set_strategy(AdapterStrategy(rank=2, mode=mode))
    after = _values(module, batch)
    for name in module.loss_names:
        assert torch.equal(after[name], before[name])
    assert torch.equal(module(x), u_before)


def test_tags_change_nothing_without_per_loss_adapters(burgers):
    """The problems' tags are no-ops in the summed design: losses as with untagged calls."""
    module = burgers.module(strategy=AdapterStrategy(rank=2))
    _perturb(module)
    x = _batch(burgers)["residual"]
    assert torch.equal(module(x, loss="initial"), module(x))
    with module.loss_scope("boundary"):
        assert torch.equal(module(x), module.model(x))


def test_predict_with_and_merged(burgers):
    module = _per_loss(burgers, predict_with="initial")
    _perturb(module)
    x = _batch(burgers)["residual"]
    torch.testing.assert_close(module(x), module(x, loss="initial"))  # validation's forward
    torch.testing.assert_close(module.model.merged()(x), module(x, loss="initial"))
    for k, name in enumerate(module.loss_names):
        torch.testing.assert_close(module.model.merged(k)(x), module(x, loss=name))
    module.set_strategy(AdapterStrategy(rank=2, mode="per_loss", predict_with="trunk"))
    torch.testing.assert_close(module(x), module.model.merged("trunk")(x))
    assert module.model.predict_with == "trunk"


def test_training_moves_each_adapter_and_uses_pathway_norms(burgers, tiny_trainer):
    module = _per_loss(burgers)
    assert module.strategy.uses_pathway_norms
    assert module.strategy.rule.max_weight == 100.0
    start = [p.detach().clone() for p in module._all_adapter_parameters()]
    tiny_trainer(4).fit(module, burgers.datamodule())
    moved = [not torch.equal(p, s) for p, s in zip(module._all_adapter_parameters(), start)]
    assert all(moved)
    assert module.loss_weights is not None and bool((module.loss_weights <= 100).all())


class _LossLog(Callback):
    def __init__(self) -> None:
        self.objective: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.lbfgs_run.started:
            self.objective.append(pl_module.lbfgs_run.last_loss)


def test_lbfgs_phase_with_per_loss_adapters_decreases_the_loss(tiny_trainer):
    module = _poisson(lbfgs=LBFGSPhase(after=3, max_iter=5))
    _perturb(module, scale=0.05)
    log = _LossLog()
    batches = [_POISSON_BATCH] * 12
    tiny_trainer(10, callbacks=[log]).fit(module, train_dataloaders=_Loader(batches))
    assert module.lbfgs_run.started
    assert len(log.objective) >= 5
    assert log.objective[-1] < log.objective[0]
    assert not module.model.untagged  # tagged: one pass per step


class _Loader:
    """A plain iterable of batches (no collation)."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def test_bad_input(burgers):
    with pytest.raises(ValueError, match=r"names no loss; valid values .*'boundary'"):
        _per_loss(burgers, predict_with="data")
    with pytest.raises(ValueError, match="predict_with must be one of"):
        AdapterStrategy(predict_with=-1)
    with pytest.raises(ValueError, match="mode must be one of"):
        AdapterStrategy(mode="each")
    with pytest.raises(ValueError, match="form must be one of"):
        AdapterStrategy(form="deep")
    trunk = MLP(2, 1, width=8, depth=2)
    target = [n for n, m in trunk.named_modules() if isinstance(m, nn.Linear)][1:2]
    with pytest.raises(ValueError, match=r"target names \['nope'\], which are not nn.Linear"):
        burgers.module(trunk, strategy=AdapterStrategy(rank=9, target=["nope"]))
    # issue 15: a rank larger than the targeted layer (8 -> 8) is refused, naming it
    with pytest.raises(ValueError, match=r"rank=9 is larger than every layer target=.*at most 8"):
        burgers.module(trunk, strategy=AdapterStrategy(rank=9, target=target))
    wide = burgers.module(trunk, strategy=AdapterStrategy(rank=8, target=target))
    assert wide.model.adapted_layer_names == target
    module = _per_loss(burgers)
    with pytest.raises(ValueError, match=r"names no loss of this module; valid names are"):
        module(torch.rand(4, 2), loss="inital")
    scope = module.loss_scope("x")
    with pytest.raises(ValueError, match=r"\['residual', 'initial', 'boundary'\]"), scope:
        pass


def test_checkpoint_restores_the_per_loss_design(burgers):
    module = _per_loss(burgers, predict_with="boundary", form="nonlinear")
    _perturb(module)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    fresh = burgers.module()
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert fresh.model.mode == "per_loss" and fresh.model.form == "nonlinear"
    x = _batch(burgers)["residual"]
    assert torch.equal(fresh(x), module(x))
    assert torch.equal(fresh(x), module(x, loss="boundary"))


def test_nonlinear_per_loss_adapters_train(burgers, tiny_trainer):
    module = _per_loss(burgers, form="nonlinear", target="last:1")
    assert len(module.model.adapted_layer_names) == 1
    tiny_trainer(3).fit(module, burgers.datamodule())
    assert all(bool(p.abs().sum() > 0) for p in module.adapter_parameters(2)[1::2])
    with pytest.raises(ValueError, match="cannot be folded"):
        module.model.merged()


@pytest.mark.parametrize("mode", ["summed", "per_loss"])
def test_a_tagged_forward_applies_the_hard_constraint_once(mode):
    problem = problems.get("burgers", hard_constraints=("initial",))
    module = problem.module(strategy=AdapterStrategy(rank=2, mode=mode))
    _perturb(module)
    x = torch.rand(16, 2)
    lift, distance = problem.hard_form(x)
    with module.loss_scope("residual"):
        expected = lift + distance * module.model(x)  # the transform, applied once
    torch.testing.assert_close(module(x, loss="residual"), expected)
    if mode == "summed":
        assert torch.equal(module(x, loss="residual"), module(x))
