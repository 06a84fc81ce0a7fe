"""Hard constraints: exact conditions by an output transform, fewer losses, training runs."""

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lightning_pinn import ConflictCallback, problems
from lightning_pinn.networks import MLP
from lightning_pinn.operators import gradient
from lightning_pinn.problems import ProblemModule, TimeDependentProblem

SUPPORT = {
    "burgers": ("initial", "boundary"),
    "wave": ("initial", "boundary"),
    "convection": ("initial",),
    "allen_cahn": ("initial",),
    "klein_gordon": ("initial",),
    "diffusion_reaction": ("initial",),
}
CASES = [(name, (c,)) for name, conds in SUPPORT.items() for c in conds] + [
    ("burgers", ("initial", "boundary")),
    ("wave", ("initial", "boundary")),
    ("convection-b40", ("initial",)),
]


def _module(problem, width=16):
    torch.manual_seed(0)
    return problem.module(trunk=MLP(problem.input_dim, problem.output_dim, width=width, depth=2))


def test_the_registry_of_support_is_what_the_problems_declare() -> None:
    assert problems.hard_constraint_support() == dict(sorted(SUPPORT.items()))
    for name in problems.names():
        p = problems.get(name)
        assert isinstance(p, TimeDependentProblem) == (p.name.split("-")[0] in SUPPORT)


@pytest.mark.parametrize(("name", "hard"), CASES)
def test_the_constrained_losses_vanish_to_machine_precision(name, hard) -> None:
    free = problems.get(name)  # all K losses, evaluated on the constrained network
    batch = free.datamodule(points={k: 256 for k in free.point_sets()}).sample(0)
    constrained = _module(problems.get(name, hard_constraints=hard))
    unconstrained = _module(free)
    exact = free.losses(constrained, {k: v.clone() for k, v in batch.items()})
    loose = free.losses(unconstrained, {k: v.clone() for k, v in batch.items()})
    for cond in hard:
        # The initial losses of wave and klein_gordon include mean u_t(x, 0)²: zero as well.
        assert exact[cond].item() <= 1e-12, (cond, exact[cond].item())
        assert loose[cond].item() > 1e-4
    if "initial" in hard:
        x0 = batch["initial"].clone().requires_grad_(True)
        u0 = constrained(x0)
        lift, _ = constrained.problem.hard_form(x0)
        assert torch.equal(u0, lift)  # u = g exactly at t = 0
        if name in ("wave", "klein_gordon"):
            assert torch.equal(gradient(u0, x0)[:, 1:], torch.zeros_like(u0))  # u_t(x, 0) = 0


@pytest.mark.parametrize(("name", "hard"), CASES)
def test_loss_names_and_point_sets_shrink(name, hard) -> None:
    p = problems.get(name, hard_constraints=hard)
    full = type(p).loss_names
    assert p.loss_names == tuple(n for n in full if n not in hard)
    assert len(p.loss_names) == 3 - len(hard)
    assert problems.get(name).loss_names == full  # the class keeps the full list
    assert set(p.point_sets()) == set(p.loss_names)  # constrained points are not sampled
    batch = p.datamodule(points={k: 64 for k in p.point_sets()}).sample(0)
    assert set(batch) == set(p.loss_names)
    module = _module(p, width=8)
    assert module.loss_names == p.loss_names and module.num_losses == len(p.loss_names)
    assert set(module.losses(batch)) == set(p.loss_names)


def test_validation_and_prediction_see_the_constrained_function() -> None:
    p = problems.get("burgers", hard_constraints=("initial",))
    module = _module(p)
    x = torch.rand(50, 2) * torch.tensor([2.0, 1.0]) - torch.tensor([1.0, 0.0])
    with torch.no_grad():
        expected = p.output_transform(x, module.model(x))
        assert torch.equal(module(x), expected)
        assert not torch.equal(module.model(x), expected)
        dm = p.datamodule()
        x_val, _ = next(iter(dm.val_dataloader()))
        at_t0 = x_val[x_val[:, 1] == 0]
        assert torch.equal(module(at_t0), -torch.sin(torch.pi * at_t0[:, :1]))


def test_spellings_round_trip_and_reload() -> None:
    by_str = problems.get("wave", hard_constraints="initial, boundary")
    by_list = problems.get("wave", hard_constraints=["initial", "boundary"])
    assert by_str.hard_constraints == by_list.hard_constraints == ("initial", "boundary")
    assert by_str.loss_names == ("residual",)
    options = problems.get("burgers", hard_constraints=("initial",), causal_eps=1.0).options()
    assert options["hard_constraints"] == ["initial"] and options["causal_eps"] == 1.0
    assert list(options)[-3:] == ["hard_constraints", "causal_eps", "causal_chunks"]
    # load_from_checkpoint path: saved hparams repeat the reduced loss names.
    module = ProblemModule("burgers", problem_options=options, loss_names=["residual", "boundary"])
    assert module.loss_names == ("residual", "boundary")
    with pytest.raises(ValueError, match="contradicts"):
        ProblemModule(
            "burgers", problem_options=options, loss_names=problems.get("burgers").loss_names
        )


@pytest.mark.parametrize(
    ("name", "overrides", "error", "match"),
    [
        ("convection", {"hard_constraints": ("boundary",)}, ValueError, r"supports \['initial'\]"),
        (
            "klein_gordon",
            {"hard_constraints": "boundary"},
            ValueError,
            "burgers: initial, boundary",
        ),
        ("burgers", {"hard_constraints": ("initial", "initial")}, ValueError, "repeats"),
        ("burgers", {"hard_constraints": 1}, TypeError, "condition names"),
        ("helmholtz", {"hard_constraints": ("boundary",)}, ValueError, r"wave \(initial, boundary"),
        ("poisson_nd", {"causal_eps": 1.0}, ValueError, "time-dependent forward problems"),
    ],
)
def test_unsupported_hard_constraints_are_rejected(name, overrides, error, match) -> None:
    with pytest.raises(error, match=match):
        problems.get(name, **overrides)


def test_points_for_a_constrained_set_are_rejected() -> None:
    p = problems.get("burgers", hard_constraints=("initial",))
    with pytest.raises(ValueError, match="unknown point set 'initial'"):
        p.datamodule(points={"initial": 10})


def _trainer(tmp_path, steps, callbacks=()):
    return L.Trainer(
        max_steps=steps,
        logger=CSVLogger(tmp_path),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )


def test_training_with_the_conflict_callback_on_the_remaining_two_losses(tmp_path) -> None:
    p = problems.get("wave", hard_constraints=("initial",))
    module = _module(p, width=8)
    callback = ConflictCallback(probe_steps=4, auto_switch=True)
    dm = p.datamodule(points={"residual": 64, "boundary": 32})
    _trainer(tmp_path, 8, [callback]).fit(module, dm)
    assert module.train_steps == 8
    assert module.loss_jacobian.shape[0] == 2
    assert callback.report is not None
    assert list(callback.report.to_dict()["loss_names"]) == ["residual", "boundary"]


def test_a_single_remaining_loss_trains_and_rejects_what_needs_two(tmp_path) -> None:
    p = problems.get("burgers", hard_constraints=("initial", "boundary"))
    assert p.loss_names == ("residual",)
    module = _module(p, width=8)
    _trainer(tmp_path, 3).fit(module, p.datamodule(points={"residual": 64}))
    assert module.train_steps == 3 and module.loss_jacobian.shape[0] == 1
    with pytest.raises(ValueError, match="single loss"):
        _module(p, width=8).set_strategy("adapters")
    with pytest.raises(ValueError, match="1 loss"):
        _trainer(tmp_path, 3, [ConflictCallback(probe_steps=2)]).fit(
            _module(p, width=8), p.datamodule(points={"residual": 64})
        )
