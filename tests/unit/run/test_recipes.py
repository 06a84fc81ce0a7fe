"""Recipes: lookup, validation, application to a RunConfig, and that every registered problem's
recipe builds its module (no training)."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

from lightning_pinn import problems
from lightning_pinn.networks import MLP, FourierFeatures, ModifiedMLP, PeriodicEmbedding
from lightning_pinn.run import RunConfig
from lightning_pinn.run._experiment import _phase_options
from lightning_pinn.run._recipes import (
    RECIPE_DIR,
    apply_recipe,
    build_trunk,
    lbfgs_phase,
    load_recipe,
    recipe_names,
)


@pytest.mark.parametrize(
    "problem, expected",
    [
        ("burgers", "burgers"),
        ("convection-b40", "convection-b40"),
        ("convection-b10", "convection-b10"),
        ("convection", "convection"),
        ("helmholtz-a6", "helmholtz"),
        ("burgers_inverse", "burgers_inverse"),
        ("thermal_flow", "default"),
        ("poisson_nd-d10", "default"),
    ],
)
def test_lookup_exact_then_family_then_default(problem, expected):
    assert load_recipe(problem).name == expected


def test_named_recipe_and_path(tmp_path):
    assert load_recipe("burgers", "vanilla").name == "vanilla"
    path = tmp_path / "mine.yaml"
    path.write_text("steps: 7\nlr: 0.01\n")
    recipe = load_recipe("burgers", str(path))
    assert (recipe.name, recipe.steps, recipe.lr, recipe.source) == ("mine", 7, 0.01, str(path))


def test_digest_follows_the_settings_not_the_text(tmp_path):
    """Records are keyed by the digest: a comment or a reordering must not orphan them, and a
    changed setting must."""

    def digest(name, text):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        return load_recipe("burgers", str(path)).digest

    base = digest("a", "steps: 7\nlr: 0.01\nrule: {name: gradnorm, every: 100}\n")
    same = digest("b", "# a comment\nrule:\n  every: 100\n  name: gradnorm\nlr: 1.0e-2\nsteps: 7\n")
    assert same == base
    assert digest("c", "steps: 7\nlr: 0.01\nrule: {name: gradnorm, every: 50}\n") != base
    assert digest("d", "steps: 8\nlr: 0.01\nrule: {name: gradnorm, every: 100}\n") != base


def test_precision_joins_the_digest_only_when_set(tmp_path):
    """A recipe may name Lightning's precision; the field came after records were keyed by
    digest, so leaving it out (or null) keeps every earlier digest."""
    paths = {}
    for name, extra in (
        ("base", ""),
        ("null", "precision: null\n"),
        ("f64", "precision: 64-true\n"),
    ):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text("steps: 7\nlr: 0.01\n" + extra)
    base, null, f64 = (load_recipe("burgers", str(paths[n])) for n in ("base", "null", "f64"))
    assert base.digest == null.digest != f64.digest
    assert f64.precision == "64-true" and base.precision is None
    cfg = RunConfig(problem="burgers")
    assert apply_recipe(cfg, f64).precision == "64-true"
    assert apply_recipe(cfg, base).precision == "32-true"  # the run's default stays
    given = dataclasses.replace(cfg, precision="bf16-mixed")
    assert apply_recipe(given, f64, given={"precision"}).precision == "bf16-mixed"


def test_unknown_recipe_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown recipe 'fancy'") as err:
        load_recipe("burgers", "fancy")
    for name in ("vanilla", "burgers", "convection"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("steps: 10\ntrunck: {}\n", r"unknown key\(s\) \['trunck'\]"),
        ("lr: 0.1\n", "'steps' is required"),
        ("steps: 0\n", "positive integer"),
        ("steps: 10\nlbfgs: {after_fraction: 1.5}\n", r"after_fraction must be in \[0, 1\)"),
        ("steps: 10\nlbfgs: {after: 3, after_fraction: 0.5}\n", "exactly one of"),
        ("steps: 10\nlbfgs: {after_fraction: 0.5, histroy: 3}\n", "lbfgs: .*histroy"),
        ("steps: 10\ntrunk: {init_args: {width: 3}}\n", "needs a class_path"),
        ("steps: 10\nprecision: 65-true\n", "precision must be one of 32-true, 64-true"),
        ("steps: 10\nprecision: 64\n", "precision must be one of"),
        ("[1, 2]\n", "expected a mapping"),
    ],
)
def test_bad_recipe_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_recipe("burgers", str(path))


def test_extends_merges_mappings_and_replaces_other_values(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "steps: 10\nlr: 0.01\nrule: {name: gradnorm, every: 100}\n"
        "points: {residual: 500, boundary: 50}\nlbfgs: {after_fraction: 0.5}\n"
        "problem_options: {hard_constraints: [initial, boundary]}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: base\nrule: {every: 10}\npoints: {residual: 900}\nlbfgs: null\n"
        "problem_options: {hard_constraints: [initial]}\n"
    )
    child = load_recipe("burgers", str(tmp_path / "child.yaml"))
    assert child.name == "child" and (child.steps, child.lr) == (10, 0.01)
    assert child.rule == {"name": "gradnorm", "every": 10}  # merged key by key
    assert child.points == {"residual": 900, "boundary": 50}
    assert child.lbfgs is None  # null replaces
    assert child.problem_options == {"hard_constraints": ["initial"]}  # a list replaces
    (tmp_path / "same.yaml").write_text("extends: base.yaml\n")  # a path, relative to the file
    assert load_recipe("burgers", str(tmp_path / "same.yaml")).digest == (
        load_recipe("burgers", str(tmp_path / "base.yaml")).digest
    )


def test_convection_betas_extend_the_family_recipe():
    """The per-beta files restate only the Fourier scales; the rest is convection.yaml's."""
    family = load_recipe("convection")
    for name in ("convection-b1", "convection-b10", "convection-b20", "convection-b40"):
        assert "extends: convection" in (RECIPE_DIR / f"{name}.yaml").read_text()
        recipe = load_recipe(name)
        for field in ("steps", "lr", "rule", "schedule", "lbfgs", "points", "problem_options"):
            assert getattr(recipe, field) == getattr(family, field), (name, field)
        assert recipe.trunk["init_args"]["width"] == family.trunk["init_args"]["width"]


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a": "extends: b\nsteps: 3\n", "b": "extends: a\n"}, "cycle: a.yaml -> b.yaml -> a.yaml"),
        ({"a": "extends: nowhere\nsteps: 3\n"}, "extends .nowhere.*does not exist"),
        ({"a": "extends: [b]\nsteps: 3\n"}, "extends must name a recipe"),
        ({"a": "steps: [3\n"}, "not valid YAML"),
        ({"a": "extends: b\n", "b": "[1, 2]\n"}, "extends .*b.yaml, which is not a mapping"),
    ],
)
def test_bad_extends_is_named(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_recipe("burgers", str(tmp_path / "a.yaml"))


def test_missing_trunk_class_is_named():
    with pytest.raises(ValueError, match="lightning_pinn.networks.NoSuchNet"):
        build_trunk({"class_path": "lightning_pinn.networks.NoSuchNet"}, 2, 1)
    with pytest.raises(ValueError, match="widht"):
        build_trunk({"class_path": "lightning_pinn.networks.MLP", "init_args": {"widht": 3}}, 2, 1)


def test_lbfgs_fraction_scales_with_the_run():
    assert lbfgs_phase({"after_fraction": 0.9, "max_iter": 5}, 2000) == {
        "after": 1800,
        "max_iter": 5,
    }
    assert lbfgs_phase({"after_fraction": 0.9}, 30)["after"] == 27
    assert lbfgs_phase({"after_fraction": 0.9}, 1)["after"] == 0  # always below max_steps
    assert lbfgs_phase({"after": 12}, 30) == {"after": 12}
    assert lbfgs_phase(None, 30) is None


def test_vanilla_is_the_config_before_recipes():
    before = RunConfig(problem="burgers")
    after = apply_recipe(before, load_recipe("burgers", "vanilla"))
    assert dataclasses.replace(after, recipe=None) == before
    assert after.recipe == "vanilla"
    assert _phase_options(after, problems.get("burgers")) == {}  # the module's defaults


def test_given_fields_keep_their_values():
    recipe = load_recipe("burgers")
    cfg = RunConfig(problem="burgers", max_steps=30, lr=0.01, problem_options={"nu": 0.01})
    applied = apply_recipe(cfg, recipe, given={"max_steps", "lr"})
    assert (applied.max_steps, applied.lr) == (30, 0.01)
    assert applied.trunk == recipe.trunk and applied.schedule == recipe.schedule
    assert applied.problem_options == {"nu": 0.01}
    conv = apply_recipe(
        RunConfig(problem="convection", problem_options={"causal_eps": 0.1}),
        load_recipe("convection"),
    )
    assert conv.problem_options["causal_eps"] == 0.1  # the user's key wins
    assert conv.problem_options["hard_constraints"] == ["initial"]
    decay = apply_recipe(RunConfig(lr_decay_rate=0.5), recipe, given={"lr_decay_rate"})
    assert decay.schedule is None and decay.lr_decay_rate == 0.5  # not both: an error


def test_burgers_default_recipe_builds_the_intended_module():
    cfg = apply_recipe(RunConfig(problem="burgers"), load_recipe("burgers"))
    problem = problems.get(cfg.problem, **cfg.problem_options)
    assert cfg.strategy == "auto"  # run_experiment starts on "none" and the probe switches
    module = problem.module(lr=cfg.lr, strategy="none", **_phase_options(cfg, problem))
    linears = [m for m in module.model.modules() if isinstance(m, nn.Linear)]
    # 20x8 (Raissi et al.'s depth and width) on 8000 points, session 18 (docs/results.md)
    assert isinstance(module.model, MLP) and len(linears) == 9 and linears[1].in_features == 20
    assert module.hparams["lbfgs"]["after"] == 800 and module.hparams["lbfgs"]["max_iter"] == 20
    assert module.hparams["schedule"]["warmup_steps"] == 200
    assert cfg.points == {"residual": 8000} and cfg.max_steps == 1000


@pytest.mark.parametrize("name", [n for n in problems.names() if n.startswith("convection")])
def test_convection_recipes_scale_their_time_features_with_beta(name):
    # sin(x - beta t) needs frequency beta in t: sigma_t = max(1, beta / 10) (chosen on b20)
    trunk = build_trunk(load_recipe(name).trunk, 2, 1)
    (features,) = [m for m in trunk.modules() if isinstance(m, FourierFeatures)]
    s_t = max(1.0, problems.get(name).beta / 10)
    sigma = features.sigma if isinstance(features.sigma, tuple) else (features.sigma,) * 4
    # the periodic embedding's outputs are (cos x, cos pi t, sin x, sin pi t)
    assert sigma == (1.0, s_t, 1.0, s_t)


def test_allen_cahn_recipe_trains_the_initial_condition_softly_behind_the_embedding_chain():
    """The hard form u = u0 + t N grew without bound where the causal weights stayed 0 (seed 2
    ended at 2.99); the recipe keeps the initial loss and puts Fourier features behind the
    periodic embedding, then L-BFGS from 70 % of the steps (docs/results.md)."""
    recipe = load_recipe("allen_cahn")
    cfg = apply_recipe(RunConfig(problem="allen_cahn"), recipe)
    problem = problems.get("allen_cahn", **cfg.problem_options)
    assert "initial" in problem.loss_names and problem.causal_eps == 1.0
    chain = [type(m) for m in build_trunk(cfg.trunk, 2, 1).modules()]
    assert chain.index(PeriodicEmbedding) < chain.index(FourierFeatures)
    assert lbfgs_phase(recipe.lbfgs, recipe.steps)["after"] == round(0.7 * recipe.steps)


def test_periodic_and_fourier_trunks():
    conv = apply_recipe(RunConfig(problem="convection-b40"), load_recipe("convection-b40"))
    trunk = build_trunk(conv.trunk, 2, 1)
    assert isinstance(trunk, ModifiedMLP) and any(
        isinstance(m, PeriodicEmbedding) for m in trunk.modules()
    )
    wave = build_trunk(load_recipe("wave").trunk, 2, 1)
    assert any(isinstance(m, FourierFeatures) for m in wave.modules())
    assert isinstance(build_trunk(load_recipe("helmholtz").trunk, 2, 1), MLP)


@pytest.mark.parametrize("name", problems.names())
def test_every_problem_recipe_builds_a_module(name):
    cfg = apply_recipe(RunConfig(problem=name), load_recipe(name))
    cfg.validate()
    problem = problems.get(name, **cfg.problem_options)
    strategy = "none" if cfg.strategy == "auto" else cfg.strategy  # as run_experiment starts
    module = problem.module(lr=cfg.lr, strategy=strategy, **_phase_options(cfg, problem))
    problem.datamodule(points=cfg.points, resample=cfg.resample)
    assert module.hparams["lbfgs"]["after"] < cfg.max_steps


def test_every_recipe_file_loads():
    assert {"default", "vanilla", "burgers"} <= set(recipe_names())
    for name in recipe_names():
        load_recipe("burgers", name)
    assert (RECIPE_DIR / "default.yaml").is_file()
