"""Recipes: a problem's recommended set-up as data (YAML under ``examples/recipes/``).

A recipe names the trunk (``class_path``/``init_args``, built by jsonargparse with ``in_dim``
and ``out_dim`` filled in from the problem), the strategy and its reweighting rule, problem
options (hard constraints, causal weighting), the collocation points and whether they are
resampled, the learning rate, its schedule, an L-BFGS phase placed at a *fraction* of the run,
the number of steps and, optionally, Lightning's ``precision`` (e.g. ``64-true``).
:func:`load_recipe` finds the file for a problem (the exact name, then the family before
``-``, then ``default.yaml``); a file may start from another with ``extends: NAME`` and
override only what differs. :func:`apply_recipe` writes it into a
:class:`~lightning_pinn.run.RunConfig`, leaving the fields given on the command line alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser
from torch import nn

from lightning_pinn.networks import Embedding, EmbeddingChain
from lightning_pinn.optim import LBFGSPhase
from lightning_pinn.run._config import RunConfig

__all__ = [
    "RECIPE_DIR",
    "Recipe",
    "apply_recipe",
    "build_trunk",
    "lbfgs_phase",
    "load_recipe",
    "recipe_names",
]

PRECISIONS: tuple[str, ...] = (
    "32-true",
    "64-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
)
"""Lightning precision settings a recipe may name (``16-true`` is refused by
:class:`~lightning_pinn.PINNModule`: Adam and PDE derivatives fail in float16)."""

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
"""Where the recipe files live: ``lightning_pinn/recipes/``, package data, so a non-editable
install has them too (``examples/recipes/`` of the repository is a link to it)."""

_FIELDS_TO_CONFIG = {
    "steps": "max_steps",
    "lr": "lr",
    "strategy": "strategy",
    "rule": "rule",
    "trunk": "trunk",
    "schedule": "schedule",
    "lbfgs": "lbfgs",
    "points": "points",
    "resample": "resample",
}
"""Recipe field -> the :class:`RunConfig` field it sets (``problem_options`` is merged;
``precision`` is set only when the recipe names one)."""

_LATER_FIELDS: dict[str, Any] = {"precision": None}
"""Fields added after records were keyed by recipe digests, with their defaults: a field at its
default stays out of :attr:`Recipe.digest`, so adding it orphaned no record."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A recommended training set-up (one YAML file under ``examples/recipes/``).

    Args:
        name: the recipe's name (the file stem).
        steps: training steps (``--max-steps`` overrides).
        lr: first-order learning rate.
        strategy: ``auto`` or a registered strategy from the start.
        rule: the reweighting rule and its options, e.g. ``{"name": "gradnorm", "every": 100}``
            (``None``: the strategy's default rule).
        trunk: ``{"class_path": ..., "init_args": {...}}`` (``None``: the tanh MLP 64x4).
        schedule: :class:`~lightning_pinn.optim.WarmupExponential` arguments (``None``:
            constant rate).
        lbfgs: :class:`~lightning_pinn.optim.LBFGSPhase` arguments, the switch given as
            ``after_fraction`` of the run's steps (``None``: no L-BFGS phase).
        points: point counts per set (``None``: the problem's).
        resample: fresh collocation points every step, or one fixed draw.
        problem_options: problem parameters, e.g. ``{"causal_eps": 1.0}``.
        precision: Lightning's ``Trainer(precision=...)``, e.g. ``"64-true"`` (float64
            weights and points, about twice the CPU time; on Burgers it did not pay,
            ``docs/results.md``); ``None``: the run's (``--precision``, default ``32-true``).
        source: the file it was read from.
    """

    name: str
    steps: int
    lr: float = 1e-3
    strategy: str = "auto"
    rule: dict[str, Any] | None = None
    trunk: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    lbfgs: dict[str, Any] | None = None
    points: dict[str, int] | None = None
    resample: bool = True
    problem_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: str | None = None
    source: str | None = None

    @property
    def digest(self) -> str:
        """The first 12 hex digits of the SHA-1 of the recipe's settings (every field but
        ``name`` and ``source``, as sorted JSON): records made with one version of a recipe say
        which. Comments, layout and spelling out a default do not change it, nor does a field
        added later (``precision``) while it is at its default."""
        settings = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("name", "source")
            and not (f.name in _LATER_FIELDS and getattr(self, f.name) == _LATER_FIELDS[f.name])
        }
        text = json.dumps(settings, sort_keys=True, default=repr)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def recipe_names(recipe_dir: Path | str = RECIPE_DIR) -> list[str]:
    """The recipe files' names (stems), sorted."""
    return sorted(p.stem for p in Path(recipe_dir).glob("*.yaml"))


def _lookup(problem: str, recipe_dir: Path) -> Path:
    """Exact name, then the family before ``-``, then ``default.yaml``."""
    for stem in (problem, problem.split("-", 1)[0], "default"):
        path = recipe_dir / f"{stem}.yaml"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no recipe for {problem!r} and no default.yaml in {recipe_dir}; recipes: "
        f"{', '.join(recipe_names(recipe_dir)) or 'none'}"
    )


def load_recipe(
    problem: str, recipe: str = "default", *, recipe_dir: Path | str = RECIPE_DIR
) -> Recipe:
    """The recipe for ``problem``.

    Args:
        problem: a registered problem name (used by ``recipe="default"``).
        recipe: ``"default"`` (the problem's recipe: ``<problem>.yaml``, else
            ``<family>.yaml`` with the family the name before ``-``, else ``default.yaml``),
            another recipe name under ``recipe_dir`` (e.g. ``"vanilla"``), or a YAML path.
        recipe_dir: where recipe files are looked up.

    Returns:
        The validated :class:`Recipe`.

    Raises:
        ValueError: an unknown recipe name (the valid names are listed), an unknown or
            ill-typed key, a bad ``lbfgs`` phase.

    Example:
        >>> load_recipe("helmholtz-a6").name  # no helmholtz-a6.yaml: the family's file
        'helmholtz'
    """
    recipe_dir = Path(recipe_dir)
    if recipe == "default":
        path = _lookup(problem, recipe_dir)
    elif _is_path(recipe):
        path = Path(recipe)
        if not path.is_file():
            raise ValueError(f"recipe file {recipe!r} does not exist")
    else:
        path = recipe_dir / f"{recipe}.yaml"
        if not path.is_file():
            raise ValueError(
                f"unknown recipe {recipe!r}; valid: default (the problem's own), "
                f"{', '.join(n for n in recipe_names(recipe_dir) if n != 'default')}, or a path "
                "to a YAML file"
            )
    return _parse(_read_resolved(path), name=path.stem, source=str(path))


def _is_path(name: str) -> bool:
    """A recipe given as a YAML path rather than a name under the recipe directory."""
    return name.endswith((".yaml", ".yml")) or "/" in name


def _read_resolved(path: Path, chain: tuple[Path, ...] = ()) -> Any:
    """The file's mapping with its ``extends:`` parent (if any) merged underneath it.

    ``extends`` names a recipe in the same directory (``convection``) or a YAML path relative
    to the file. The child's mappings are merged into the parent's key by key, at every depth;
    any other value (a list, a number, ``null``) replaces the parent's.
    """
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise ValueError(f"recipe {chain[0]}: 'extends' forms a cycle: {cycle}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"recipe {path}: not valid YAML: {err}") from None
    if not isinstance(data, Mapping) or "extends" not in data:
        return data
    data = dict(data)
    parent = data.pop("extends")
    if not isinstance(parent, str) or not parent:
        raise ValueError(
            f"recipe {path}: extends must name a recipe (e.g. 'convection') or a YAML path, "
            f"got {parent!r}"
        )
    parent_path = path.parent / (parent if _is_path(parent) else f"{parent}.yaml")
    if not parent_path.is_file():
        raise ValueError(
            f"recipe {path}: extends {parent!r}, but {parent_path} does not exist; recipes "
            f"here: {', '.join(recipe_names(path.parent)) or 'none'}"
        )
    base = _read_resolved(parent_path, (*chain, path))
    if not isinstance(base, Mapping):
        raise ValueError(
            f"recipe {path}: extends {parent_path}, which is not a mapping of keys "
            f"(got {type(base).__name__})"
        )
    return _merge(base, data)


def _merge(base: Any, override: Any) -> Any:
    """``override`` merged into ``base``: mappings key by key (recursively), else replaced."""
    if not isinstance(base, Mapping) or not isinstance(override, Mapping):
        return override
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base.get(key), value)
    return merged


def _parse(data: Any, *, name: str, source: str) -> Recipe:
    if not isinstance(data, Mapping):
        raise ValueError(f"recipe {source}: expected a mapping of keys, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(Recipe)} - {"name", "source"}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"recipe {source}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    if "steps" not in data:
        raise ValueError(f"recipe {source}: 'steps' is required")
    steps = data["steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"recipe {source}: steps must be a positive integer, got {steps!r}")
    for key in ("rule", "trunk", "schedule", "lbfgs", "points", "problem_options"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise ValueError(f"recipe {source}: {key} must be a mapping, got {data[key]!r}")
    trunk = data.get("trunk")
    if trunk is not None and "class_path" not in trunk:
        raise ValueError(f"recipe {source}: trunk needs a class_path, got {dict(trunk)}")
    if data.get("lbfgs") is not None:
        lbfgs_phase(dict(data["lbfgs"]), steps)  # validates the fraction and the options
    precision = data.get("precision")
    if precision is not None and precision not in PRECISIONS:  # PRECISIONS holds strings only
        raise ValueError(
            f"recipe {source}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    values = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    return Recipe(name=name, source=source, **values)


def apply_recipe(cfg: RunConfig, recipe: Recipe, given: Iterable[str] = ()) -> RunConfig:
    """``cfg`` with the recipe's values, except for the fields in ``given``.

    Args:
        cfg: the run's config (the command line's values).
        recipe: the recipe.
        given: :class:`RunConfig` fields set explicitly (e.g. ``max_steps`` from
            ``--max-steps``); they keep ``cfg``'s value. Problem options given in ``cfg`` win
            over the recipe's key by key; a given ``lr_decay_rate``/``lr_decay_steps`` (the
            older step decay) drops the recipe's schedule.

    Returns:
        A new config; its ``recipe`` field names the recipe.
    """
    given = set(given)
    updates: dict[str, Any] = {"recipe": recipe.name}
    for field, target in _FIELDS_TO_CONFIG.items():
        if target not in given:
            updates[target] = getattr(recipe, field)
    if recipe.precision is not None and "precision" not in given:
        updates["precision"] = recipe.precision
    if {"lr_decay_rate", "lr_decay_steps"} & given and "schedule" not in given:
        updates["schedule"] = None  # the older step decay asked for replaces the schedule
    updates["problem_options"] = {**recipe.problem_options, **cfg.problem_options}
    return dataclasses.replace(cfg, **updates)


def escalation_room(max_steps: int, probe_steps: int, lbfgs_after: int | None) -> int:
    """Steps an escalation window can take after the probe: before the run's last step and
    before an L-BFGS phase (``lbfgs_after`` module steps; ``None``: no phase)."""
    room = max_steps - 1 - probe_steps
    if lbfgs_after is not None:
        room = min(room, lbfgs_after - probe_steps)
    return room


def lbfgs_phase(spec: Mapping[str, Any] | None, max_steps: int) -> dict[str, Any] | None:
    """L-BFGS phase arguments with the switch step resolved for a run of ``max_steps``.

    ``after_fraction`` (in ``[0, 1)``) becomes ``after = round(after_fraction * max_steps)``,
    at most ``max_steps - 1``, so the phase scales with ``--max-steps``; an explicit ``after``
    is kept as is (and must be below ``max_steps`` when ``fit`` starts).

    Raises:
        ValueError: both or neither of ``after`` and ``after_fraction``, a fraction outside
            ``[0, 1)``, or an option :class:`~lightning_pinn.optim.LBFGSPhase` refuses.
    """
    if spec is None:
        return None
    options = dict(spec)
    if ("after" in options) == ("after_fraction" in options):
        raise ValueError(
            f"lbfgs needs exactly one of 'after' (steps) and 'after_fraction', got {options}"
        )
    if "after_fraction" in options:
        fraction = options.pop("after_fraction")
        if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
            raise ValueError(f"lbfgs after_fraction must be in [0, 1), got {fraction!r}")
        options["after"] = min(round(fraction * max_steps), max_steps - 1)
    try:
        LBFGSPhase(**options)
    except TypeError as err:
        raise ValueError(f"lbfgs: {err}") from None
    return options


def build_trunk(spec: Mapping[str, Any], in_dim: int, out_dim: int) -> nn.Module:
    """The trunk ``spec`` (``class_path``/``init_args``) built by jsonargparse.

    ``in_dim``/``out_dim`` are filled in from the problem where the spec leaves them out (and
    an embedding's ``in_dim`` likewise).

    Raises:
        ValueError: a missing class or a bad argument (jsonargparse's message, which names it).
    """
    spec = dict(spec)
    args = dict(spec.get("init_args") or {})
    args.setdefault("in_dim", in_dim)
    args.setdefault("out_dim", out_dim)
    if "embedding" in args:
        args["embedding"] = _fill_embedding(args["embedding"], args["in_dim"], spec)
    spec["init_args"] = args
    return _instantiate(spec, nn.Module, spec)


def _instantiate(spec: Mapping[str, Any], kind: type, trunk: Mapping[str, Any]) -> Any:
    """``spec`` built by jsonargparse as a ``kind``; its refusal as a ``ValueError``."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--obj", type=kind)
    try:
        return parser.instantiate(parser.parse_object({"obj": spec})).obj
    except Exception as err:  # jsonargparse's ArgumentError: the class or argument it refused
        raise ValueError(f"cannot build trunk {trunk.get('class_path')!r}: {err}") from None


def _is_chain(class_path: str) -> bool:
    """Whether ``class_path`` names :class:`EmbeddingChain` or a subclass of it (a short name,
    as jsonargparse accepts for the library's own classes, counts by name)."""
    module, _, name = class_path.rpartition(".")
    if not module:
        return name == EmbeddingChain.__name__
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False  # jsonargparse names the class it cannot find when the trunk is built
    return isinstance(cls, type) and issubclass(cls, EmbeddingChain)


def _fill_embedding(embedding: Any, in_dim: int, trunk: Mapping[str, Any]) -> Any:
    """An embedding spec with ``in_dim`` filled in, along every link of an ``EmbeddingChain``.

    A link's ``out_dim`` (the next link's ``in_dim``) is read from the link built once under a
    forked RNG, so filling in the sizes draws nothing from the run's random stream.
    """
    if not (isinstance(embedding, Mapping) and "class_path" in embedding):
        return embedding
    emb_args = dict(embedding.get("init_args") or {})
    emb_args.setdefault("in_dim", in_dim)
    if _is_chain(str(embedding["class_path"])):
        links, dim = [], in_dim
        for link in emb_args.get("embeddings") or []:
            link = _fill_embedding(link, dim, trunk)
            links.append(link)
            if isinstance(link, Mapping) and "class_path" in link:
                with torch.random.fork_rng(devices=[]):
                    dim = getattr(_instantiate(link, Embedding, trunk), "out_dim", dim)
        emb_args["embeddings"] = links
        emb_args.pop("in_dim")  # the chain takes its in_dim from its first link
    return {**embedding, "init_args": emb_args}
