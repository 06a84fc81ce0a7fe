"""``problems.get`` and ``problems.names``: variants, close matches, validated overrides."""

import dataclasses

import pytest
import torch

from lightning_pinn import problems

REQUIRED = [
    "burgers", "allen_cahn", "wave", "klein_gordon", "convection", "diffusion_reaction",
    "helmholtz", "convection-b1", "convection-b10", "convection-b20", "convection-b40",
    "helmholtz-a1", "helmholtz-a2", "helmholtz-a6", "burgers_inverse", "heat_inverse",
    "poisson_inverse", "thermoelastic", "kovasznay", "thermal_flow", "poisson_nd-d2",
    "poisson_nd-d5", "poisson_nd-d10", "poisson_nd-d20", "poisson_nd-d50", "heat_nd",
]  # fmt: skip


def test_every_required_configuration_is_registered() -> None:
    assert set(REQUIRED) <= set(problems.names())
    assert len(problems.names()) >= 24


@pytest.mark.parametrize(
    ("name", "k"),
    [("burgers", 3), ("helmholtz", 2), ("heat_inverse", 3), ("thermoelastic", 4),
     ("kovasznay", 5), ("thermal_flow", 6), ("poisson_nd-d50", 2), ("heat_nd", 3)],
)  # fmt: skip
def test_number_of_losses(name: str, k: int) -> None:
    assert len(problems.get(name).loss_names) == k


def test_variants_and_overrides() -> None:
    assert problems.get("convection").beta == 30.0
    assert problems.get("convection-b10").beta == 10.0
    assert problems.get("convection", beta=15).beta == 15
    assert problems.get("helmholtz").a2 == 4 and problems.get("helmholtz-a6").a2 == 6
    assert problems.get("poisson_nd").dim == 5
    d20 = problems.get("poisson_nd-d20")
    assert d20.input_dim == 20
    assert d20.default_trunk()(torch.zeros(3, 20)).shape == (3, 1)
    assert problems.get("heat_nd", dim=3).input_dim == 4
    assert problems.get("convection-b40").name == "convection-b40"


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ValueError, match="Did you mean 'convection'"):
        problems.get("convektion")
    with pytest.raises(ValueError, match="poisson_inverse"):
        problems.get("poisson_invers")


@pytest.mark.parametrize(
    ("name", "overrides", "error", "match"),
    [
        ("convection", {"beta": "fast"}, TypeError, "beta"),
        ("convection", {"beta": -1.0}, ValueError, "beta"),
        ("helmholtz", {"a2": 1.5}, TypeError, "a2"),
        ("helmholtz", {"a2": 0}, ValueError, "a2"),
        ("poisson_nd", {"dim": 0}, ValueError, "dim"),
        ("poisson_nd", {"dim": 5.0}, TypeError, "dim"),
        ("burgers_inverse", {"noise": 2.0}, ValueError, "noise"),
        ("heat_inverse", {"kappa_init": 0.0}, ValueError, "kappa_init"),
        ("wave", {"n_residual": 0}, ValueError, "n_residual"),
        ("kovasznay", {"viscosity": 1.0}, ValueError, "no parameter"),
        # before: inf passed every "> 0" check and every loss was non-finite
        ("burgers", {"nu": float("inf")}, ValueError, "nu=inf must be a finite number"),
        ("convection", {"beta": float("nan")}, ValueError, "beta=nan must be a finite"),
    ],
)
def test_bad_overrides_are_rejected(name, overrides, error, match) -> None:
    with pytest.raises(error, match=match):
        problems.get(name, **overrides)


def test_datamodule_rejects_unknown_point_sets() -> None:
    with pytest.raises(ValueError, match="unknown point set"):
        problems.get("wave").datamodule(points={"interior": 10})


@pytest.mark.parametrize("seed", [1.5, "3", True])
def test_datamodule_seed_must_be_an_integer(seed) -> None:
    with pytest.raises(TypeError, match="seed must be an integer"):  # 1.5 was truncated to 1
        problems.get("wave").datamodule(seed=seed)


def test_aliases_are_names_that_build_the_same_problem() -> None:
    found = problems.aliases()
    # poisson_nd's default dim is 5: it is poisson_nd-d5, the explicit variant is canonical
    assert found["poisson_nd"] == "poisson_nd-d5"
    # convection's default beta is 30, helmholtz's a2 is 4: distinct from every variant
    assert not {"convection", "helmholtz", "heat_nd"} & set(found)
    for alias, canonical in found.items():
        assert canonical not in found
        a, c = problems.get(alias), problems.get(canonical)
        assert type(a) is type(c)
        assert {k: v for k, v in vars(a).items() if k != "name"} == {
            k: v for k, v in vars(c).items() if k != "name"
        }


def test_a_built_in_name_stays_canonical_when_its_class_is_registered_again(monkeypatch) -> None:
    from lightning_pinn.problems import _registry

    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    problems.register("aaa_my_burgers", problems.Burgers)
    assert problems.aliases()["aaa_my_burgers"] == "burgers"
    assert "burgers" not in problems.aliases()


@pytest.mark.parametrize("name", problems.names())
def test_reference_refuses_points_of_the_wrong_shape(name: str) -> None:
    problem = problems.get(name)
    good = problem.eval_points()[:3]
    assert problem.reference(good).shape == (3, problem.output_dim)
    for bad in (good[:, 0], torch.cat([good, good[:, :1]], dim=1)):  # 1-D; one column too many
        with pytest.raises(ValueError, match=rf"{problem.name}.reference expects points of shape"):
            problem.reference(bad)


def test_a_user_problem_gets_the_reference_check_too() -> None:
    @dataclasses.dataclass
    class Line(problems.Problem):
        name = "line"
        input_dim = 2

        def reference(self, points):
            return points[:, :1] + points[:, 1:]

    assert Line().reference(torch.ones(4, 2)).shape == (4, 1)
    with pytest.raises(ValueError, match=r"line.reference expects points of shape \[N, 2\]"):
        Line().reference(torch.ones(4, 3))  # before: x + t read from the first 2 columns


@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        ((3, 1), r"cannot take the points of problem 'burgers', \[N, 2\]"),
        ((2, 2), r"to \(2, 2\) for N = 2, not \[N, 1\]"),
    ],
    ids=["in_dim", "out_dim"],
)
def test_a_trunk_of_the_wrong_size_fails_when_the_module_is_built(sizes, match) -> None:
    from lightning_pinn.networks import MLP

    trunk = MLP(*sizes, width=8, depth=1)
    state = torch.get_rng_state()
    with pytest.raises(ValueError, match=match + r".*in_dim=2 \(x, t\) and out_dim=1 \(u\)"):
        problems.get("burgers").module(trunk=trunk)  # before: a matmul error at step 1
    assert torch.equal(torch.get_rng_state(), state)
    bn = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    problems.get("burgers").module(trunk=bn)
    assert bn.training and int(bn[1].num_batches_tracked) == 0  # the check changed nothing
