"""The typed configuration of one run, and the trainer defaults shared with ``fit --config``.

:class:`RunConfig` is the single source of the ``lightning-pinn run`` flags: every field carries
its help text (and, where the name or the parsing differs from the field, its flag and value
parser) in ``dataclasses.field(metadata=...)``; the command line is generated from it
(:func:`lightning_pinn.cli`). :class:`StrategyFlags` are the common strategy options a W&B
sweep passes as plain flags; they are merged into ``RunConfig.module_options``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

from lightning_pinn import problems
from lightning_pinn.diagnostics import (
    MIN_FINITE_STEPS,
    RULES,
    TrialScore,
    rule_thresholds,
    validate_thresholds,
)
from lightning_pinn.run._checks import check_checkpoint, check_out_dir
from lightning_pinn.run._parsers import (
    json_object,
    non_negative_float,
    parse_candidates,
    parse_devices,
    parse_interventions,
    parse_points,
    positive_float,
    positive_int,
    seed_int,
)
from lightning_pinn.run._threads import MAX_DEFAULT_THREADS
from lightning_pinn.strategies import strategy_names
from lightning_pinn.strategies.adapters import Routing

__all__ = [
    "CHECKPOINT_EVERY_MAX",
    "RUN_STRATEGIES",
    "TRAINER_DEFAULTS",
    "RunConfig",
    "StrategyFlags",
    "option",
]

LoggerName = Literal["csv", "tensorboard", "wandb", "none"]
RUN_STRATEGIES: tuple[str, ...] = ("auto", *strategy_names())
"""``auto`` (probe, diagnose, switch) or a registered strategy from the start."""

RUN_RULE = "recipe-map"
"""The regime rule (:data:`lightning_pinn.diagnostics.RULES`) of ``run`` when
``--regime-rule`` is not given: ``recipe-map``, the rule chosen across the rule families on
the regime map's calibration half, which then beat the DESIGN rule on the held-out half
(docs/results.md). ``ConflictCallback`` and ``classify_regime`` keep the documented ``design``
thresholds as their defaults."""

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 2000,
    "val_check_interval": 500,
    "check_val_every_n_epoch": None,
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 50,
    "enable_model_summary": False,
}
"""``lightning.Trainer`` defaults of every run (``run`` and ``fit --config``): the collocation
stream is infinite, so one epoch never ends, the budget is ``max_steps`` and validation runs
every ``val_check_interval`` training steps."""

CHECKPOINT_EVERY_MAX = 500
"""The default checkpoint interval is ``min(CHECKPOINT_EVERY_MAX, max(1, max_steps // 4))``
steps: a run killed at any point loses at most that many steps."""


def option(
    default: Any = None,
    help: str = "",  # noqa: A002 - the argparse name
    *,
    flag: str | None = None,
    parse: Callable[[str], Any] | None = None,
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag.

    Args:
        default: the field default.
        help: the flag's help text (required: every flag is documented).
        flag: the flag when it is not ``--field-name`` (``"problem"``: positional;
            ``--no-X`` for a ``True`` boolean that the flag turns off).
        parse: text -> value, raising ``ValueError`` with a clear message.
        choices: the valid values (default: the field's ``Literal`` annotation, if any).
        metavar: the value's name in ``--help``.
        factory: ``default_factory`` for mutable defaults.
    """
    if not help:
        raise ValueError("every run option needs a help text")
    metadata = {"help": help, "flag": flag, "parse": parse, "choices": choices, "metavar": metavar}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _check_accelerator(accelerator: str) -> None:
    """Raise before any folder is made when the named accelerator is unknown or not there.

    Raises:
        ValueError: a name Lightning does not register (``auto`` and ``gpu`` aside), or one
            whose device torch does not see (``gpu``/``cuda`` without CUDA, ``mps`` without
            MPS, ``tpu`` without XLA).
    """
    from lightning.pytorch.accelerators import AcceleratorRegistry

    if accelerator == "auto":
        return
    registered = sorted(AcceleratorRegistry.available_accelerators())
    name = "cuda" if accelerator == "gpu" else accelerator
    if name not in registered:
        raise ValueError(
            f"--accelerator {accelerator}: unknown; choose one of "
            f"{', '.join(['auto', 'gpu', *registered])}"
        )
    import torch

    if name == "cuda":  # torch's own answer (what the Trainer will see)
        available = torch.cuda.is_available()
    else:
        available = AcceleratorRegistry[name]["accelerator"].is_available()
    if not available:
        raise ValueError(
            f"--accelerator {accelerator}: torch sees no such device here (a CPU build of "
            "torch, or no driver); use --accelerator cpu or auto"
        )


@dataclasses.dataclass
class RunConfig:
    """Everything one run needs; every field is a ``lightning-pinn run`` flag.

    The probe, the regime rule and the thresholds are explained in ``docs/concepts.md``; the
    flags in ``docs/cli.md``.
    """

    problem: str = option("burgers", "problem name (see `lightning-pinn list`)", flag="problem")
    max_steps: int = option(TRAINER_DEFAULTS["max_steps"], "training steps", parse=positive_int)
    seed: int = option(0, "seed of the network, the sampling and the adapters", parse=seed_int)
    strategy: str = option(
        "auto",
        "auto (the probe decides) or a fixed strategy from the start",
        choices=RUN_STRATEGIES,
    )
    probe_steps: int | None = option(
        None, "probe window (default: min(1000, max-steps / 2))", parse=positive_int
    )
    switch: bool = option(True, "diagnose only, never switch", flag="--no-switch")
    regime_rule: str = option(
        RUN_RULE,
        "named thresholds of the regime rule: recipe-map (tau-dir 0.5, tau-mag 0.25, "
        "tau-cos 0.6: chosen on the regime map's calibration half, better on its held-out half; "
        "docs/results.md) or design (ConflictCallback's defaults: tau-dir 0.5, tau-mag 1.0, "
        "tau-cos 0); --tau-dir/--tau-mag/--tau-cos override single values "
        "(docs/concepts.md, the three regimes)",
        choices=tuple(RULES),
    )
    tau_dir: float | None = option(
        None,
        "late conflict rate from which a conflicting pair is persistent (default: the "
        "rule's; docs/concepts.md, the three regimes)",
    )
    tau_mag: float | None = option(
        None,
        "median imbalance (decades) from which the regime is magnitude (default: the rule's; "
        "docs/concepts.md, the three regimes)",
    )
    tau_cos: float | None = option(
        None,
        "cosine margin of the directional regime: a persistent pair's late mean cosine must "
        "be below -tau_cos (default: the rule's; docs/concepts.md)",
    )
    interventions: dict[str, str] | None = option(
        None,
        "override the regime -> intervention map, e.g. directional=reweight "
        "(default: directional=adapters, magnitude=reweight, low=none)",
        parse=parse_interventions,
        metavar="REGIME=STRATEGY,...",
    )
    trial_steps: int | None = option(
        None,
        "guarded switch (with strategy auto): after the probe, train each candidate this many "
        "steps from the same state, score it on held-out points and keep the best; the "
        "trials count against max-steps (default: the diagnosis alone decides)",
        parse=positive_int,
    )
    trial_score: TrialScore = option(
        "geomean",
        "score of a trial (lower is better): geomean of the unweighted held-out loss ratios, "
        "sum (ratio of their sums) or residual (the first loss's ratio)",
    )
    trial_margin: float = option(
        0.0,
        "guarded switch: keep the diagnosis's first choice unless another candidate's trial "
        "score times (1 + margin) is below its own (default 0: the best score wins)",
        parse=non_negative_float,
    )
    candidates: list[str] | None = option(
        None,
        "interventions the guarded switch tries besides the diagnosed one (none is always "
        "tried; default: none,reweight)",
        parse=parse_candidates,
        metavar="STRATEGY,...",
    )
    escalate: bool = option(
        False,
        "with strategy auto: meet directional conflict with reweighting first, profile one "
        "more window under it, and add adapters only if the conflict remains "
        "(ConflictCallback(escalate=True), docs/concepts.md)",
    )
    escalate_steps: int | None = option(
        None,
        "the escalation window (default: the probe window, shortened to end before a "
        "recipe's L-BFGS phase and the run's end)",
        parse=positive_int,
    )
    reprobe_every: int | None = option(
        None,
        "with strategy auto: after the switch (or the trials), profile again every this many "
        "steps and step back to reweight or none when the regime that called for the "
        "intervention has gone; first-order steps only, none in an L-BFGS phase "
        "(ConflictCallback(reprobe_every=...), docs/concepts.md)",
        parse=positive_int,
    )
    lr: float = option(1e-3, "learning rate", parse=positive_float)
    lr_decay_rate: float = option(
        1.0, "step decay: multiply the lr by this every --lr-decay-steps", parse=positive_float
    )
    lr_decay_steps: int = option(1000, "step-decay interval", parse=positive_int)
    points: dict[str, int] | None = option(
        None,
        "point counts per set, e.g. residual=500,initial=100 (default: the problem's)",
        parse=parse_points,
        metavar="NAME=COUNT,...",
    )
    recipe: str | None = option(
        None,
        "the training recipe: default (the problem's own, examples/recipes/), vanilla (tanh "
        "MLP 64x4, constant-rate Adam, no phases: the set-up before recipes), another name "
        "under examples/recipes/, or a YAML path (`run` default: default; flags given "
        "explicitly override the recipe's values, docs/cli.md)",
        metavar="NAME|PATH",
    )
    trunk: dict[str, Any] | None = option(
        None,
        'trunk as JSON {"class_path": ..., "init_args": {...}}; in_dim/out_dim come from '
        "the problem (default: the recipe's, else the tanh MLP 64x4)",
        parse=json_object,
        metavar="JSON",
    )
    rule: dict[str, Any] | None = option(
        None,
        'reweighting rule with options as JSON, e.g. \'{"name": "gradnorm", "every": 100}\' '
        "(--reweighting or a reweighting key in --module-options wins)",
        parse=json_object,
        metavar="JSON",
    )
    schedule: dict[str, Any] | None = option(
        None,
        "learning-rate schedule as JSON, WarmupExponential's arguments, e.g. "
        '\'{"warmup_steps": 200, "decay_rate": 0.9, "decay_steps": 1000}\'',
        parse=json_object,
        metavar="JSON",
    )
    lbfgs: dict[str, Any] | None = option(
        None,
        "L-BFGS phase as JSON, LBFGSPhase's arguments with the switch as after (steps) or "
        "after_fraction of --max-steps, e.g. '{\"after_fraction\": 0.6}'",
        parse=json_object,
        metavar="JSON",
    )
    resample: bool = option(
        True,
        "draw the collocation points once (default: fresh points every step)",
        flag="--fixed-points",
    )
    problem_options: dict[str, Any] = option(
        help="problem parameters as JSON, e.g. '{\"beta\": 10}'", parse=json_object, factory=dict
    )
    module_options: dict[str, Any] = option(
        help='PINNModule options as JSON, e.g. \'{"rank": 8, "routing": "shared"}\'',
        parse=json_object,
        factory=dict,
    )
    accelerator: str = option("auto", "Lightning accelerator: auto, cpu, gpu, ...")
    devices: int | str = option(1, "Lightning devices: a count or a spec", parse=parse_devices)
    precision: str = option("32-true", "Lightning precision, e.g. 32-true, bf16-mixed")
    logger: LoggerName = option("csv", "where metrics go (wandb: offline without an API key)")
    out: str = option("runs", "root directory of logs and checkpoints")
    name: str | None = option(None, "run name (default: the problem name)")
    log_every_n_steps: int = option(
        TRAINER_DEFAULTS["log_every_n_steps"],
        "log metrics every N steps",
        flag="--log-every",
        parse=positive_int,
    )
    val_every: int | None = option(
        None,
        f"validate every N steps (default: min({TRAINER_DEFAULTS['val_check_interval']}, "
        "max-steps))",
        parse=positive_int,
    )
    checkpoint_every: int | None = option(
        None,
        "save a checkpoint every N steps: a killed run loses at most N steps (default: "
        f"min({CHECKPOINT_EVERY_MAX}, max(1, max-steps / 4)))",
        parse=positive_int,
    )
    resume: str | None = option(
        None,
        "resume from a checkpoint; a checkpoint in .../version_N/checkpoints/ continues in "
        ".../version_N",
        metavar="PATH",
    )
    threads: int | None = option(
        None,
        "torch threads (default: $OMP_NUM_THREADS if set, else min(cores, "
        f"{MAX_DEFAULT_THREADS}); see docs/cli.md)",
        parse=positive_int,
    )
    progress_bar: bool = option(
        True,
        "no progress display (without this flag: a bar on a terminal, a line every 5% of "
        "the steps otherwise)",
        flag="--no-progress-bar",
    )
    deterministic: bool = option(False, "use deterministic algorithms (slower)")
    checkpoint: bool = option(True, "save no checkpoints", flag="--no-checkpoint")
    plots: bool = option(
        True, "skip prediction.png and error_field.npz in the log directory", flag="--no-plots"
    )

    def validate(self) -> None:
        """Check the options that only make sense together.

        Raises:
            ValueError: non-positive steps, a probe longer than the run, an unknown logger, a
                missing or unreadable checkpoint to resume from, an ``out`` that cannot be a
                directory (e.g. under a regular file).
        """
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if self.name is not None and (
            not self.name or self.name in (".", "..") or any(c in self.name for c in "/\\")
        ):
            raise ValueError(
                f"--name {self.name!r} must be one folder name (no '/', '\\', '.' or '..'): the "
                "run's folder is OUT/NAME; choose the parent with --out"
            )
        if self.max_steps < MIN_FINITE_STEPS:
            raise ValueError(
                f"--max-steps {self.max_steps} leaves no room for the conflict probe, which "
                f"needs at least {MIN_FINITE_STEPS} steps; pass --max-steps >= {MIN_FINITE_STEPS}"
            )
        if self.probe_steps is not None and self.probe_steps < MIN_FINITE_STEPS:
            raise ValueError(
                f"--probe-steps must be an integer >= {MIN_FINITE_STEPS} (a regime needs at "
                f"least {MIN_FINITE_STEPS} probe steps), got {self.probe_steps!r}"
            )
        if self.probe_steps is not None and self.probe_steps > self.max_steps:
            raise ValueError(
                f"probe_steps ({self.probe_steps}) is longer than the run (max_steps="
                f"{self.max_steps}); lower --probe-steps or raise --max-steps"
            )
        switching = self.strategy == "auto" and self.switch
        got = f"got strategy {self.strategy!r}{', --no-switch' if not self.switch else ''}"
        for given, what, flag in (
            (self.trial_steps is not None, f"trial_steps={self.trial_steps} tries candidates "
             "after the probe", "--trial-steps"),
            (self.escalate, "escalate switches after the probe", "--escalate"),
            (self.reprobe_every is not None, f"reprobe_every={self.reprobe_every} re-probes "
             "after the switch", "--reprobe-every"),
        ):  # fmt: skip
            if given and not switching:
                raise ValueError(
                    f"{what}, which needs strategy auto with switching on ({got}); drop {flag} "
                    "or use --strategy auto"
                )
        if self.escalate and self.trial_steps is not None:
            raise ValueError(
                "escalate and trial_steps are two ways to check the diagnosis after the probe: "
                "give --escalate or --trial-steps, not both"
            )
        if self.escalate_steps is not None and not self.escalate:
            raise ValueError("escalate_steps is the escalation window: give --escalate too")
        if self.candidates is not None and self.trial_steps is None:
            raise ValueError(
                "candidates are tried by the guarded switch only: give --trial-steps too"
            )
        if self.trial_margin and self.trial_steps is None:
            raise ValueError(
                "trial_margin weighs the guarded switch's trials: give --trial-steps too"
            )
        _check_accelerator(self.accelerator)
        validate_thresholds(**self.thresholds)
        if self.logger not in ("csv", "tensorboard", "wandb", "none"):
            raise ValueError(
                f"unknown logger {self.logger!r}; valid: csv, tensorboard, wandb, none"
            )
        if self.resume is not None:
            saved = (check_checkpoint(self.resume).get("hyper_parameters") or {}).get("problem")
            problem = problems.get(self.problem, **self.problem_options).name
            if saved is not None and saved != problem:
                raise ValueError(
                    f"--resume: {str(self.resume)!r} was saved by a run of problem {saved!r}, "
                    f"not {problem!r}; resume it with the problem (and options) that saved it"
                )
        check_out_dir(self.out)

    @property
    def thresholds(self) -> dict[str, float]:
        """``tau_dir``, ``tau_mag`` and ``tau_cos``: the given ones, the rule's for the rest.

        Raises:
            ValueError: an unknown rule.
        """
        given = {"tau_dir": self.tau_dir, "tau_mag": self.tau_mag, "tau_cos": self.tau_cos}
        out = rule_thresholds(self.regime_rule)
        out.update({name: value for name, value in given.items() if value is not None})
        return out

    @property
    def effective_probe_steps(self) -> int:
        """``probe_steps``, or ``min(1000, max_steps // 2)`` (at least 2, at most
        ``max_steps``) when unset."""
        if self.probe_steps is not None:
            return self.probe_steps
        return min(self.max_steps, max(MIN_FINITE_STEPS, min(1000, self.max_steps // 2)))

    @property
    def effective_val_every(self) -> int:
        """``val_every``, or the default validation interval capped at ``max_steps``."""
        return self.val_every or max(1, min(TRAINER_DEFAULTS["val_check_interval"], self.max_steps))

    @property
    def effective_checkpoint_every(self) -> int:
        """``checkpoint_every``, or ``min(CHECKPOINT_EVERY_MAX, max(1, max_steps // 4))``: the
        most steps a killed run loses."""
        return self.checkpoint_every or min(CHECKPOINT_EVERY_MAX, max(1, self.max_steps // 4))


@dataclasses.dataclass
class StrategyFlags:
    """Common strategy options as plain flags (what a W&B sweep passes as ``--key=value``).

    Each one that is set overrides the same key of ``RunConfig.module_options``.
    """

    reweighting: str | None = option(None, "reweighting rule: gradnorm, lra, relobralo or fixed")
    rank: int | None = option(None, "adapter rank r", parse=positive_int)
    alpha: float | None = option(
        None, "adapter scaling numerator (scaling = alpha / rank)", parse=positive_float
    )
    routing: Routing | None = option(None, "adapter routing (own: adapter k moves on loss k only)")
    aggregator: str | None = option(None, "surgery aggregator, e.g. upgrad, pcgrad, config, mgda")

    def merged_into(self, module_options: Mapping[str, Any]) -> dict[str, Any]:
        """``module_options`` with every flag that was set written over it."""
        merged = dict(module_options)
        for f in dataclasses.fields(self):
            if (value := getattr(self, f.name)) is not None:
                merged[f.name] = value
        return merged
