"""``lightning-pinn fit --config FILE.yaml``: train a registered problem through ``LightningCLI``.

The model is :class:`ConfigProblemModule` (a :class:`~lightning_pinn.problems.ProblemModule`
whose signature is generated from :class:`~lightning_pinn.PINNModule`'s, so every module
option is a YAML key and a new option needs no edit here), the data is
:class:`ProblemDataModule`, and the trainer and its callbacks (``ConflictCallback`` included)
come from the YAML, on top of :data:`~lightning_pinn.run.TRAINER_DEFAULTS`. The problem is
named once, under ``data``; ``data.problem`` and ``data.problem_options`` are linked into the
model, so the two can never disagree. The trunk and the strategy are objects named by
``class_path``.

Example config::

    data:
      problem: burgers
      points: {residual: 2000, initial: 200, boundary: 200}
    model:
      trunk:
        class_path: lightning_pinn.MLP
        init_args: {in_dim: 2, out_dim: 1, width: 64, depth: 4}
      strategy:
        class_path: lightning_pinn.strategies.AdapterStrategy
        init_args: {rank: 8}
    trainer:
      max_steps: 2000
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from torch import nn
from typing_extensions import override

from lightning_pinn import PINNModule, problems
from lightning_pinn.callbacks import ConflictCallback
from lightning_pinn.data import CollocationDataModule, PointSet, SamplingMethod
from lightning_pinn.problems import Problem, ProblemModule
from lightning_pinn.run import TRAINER_DEFAULTS, progress_callbacks, save_prediction
from lightning_pinn.run._trainer import quiet_lightning
from lightning_pinn.strategies import strategy_option_names

__all__ = ["ConfigProblemModule", "PINNLightningCLI", "ProblemDataModule", "fit_main"]

FIT_TRAINER_DEFAULTS: dict[str, Any] = {
    **TRAINER_DEFAULTS,
    "logger": {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": "runs", "name": "fit"},
    },
}
"""The run defaults plus a CSV logger under ``runs/fit``."""


def _problem(problem: str, problem_options: Mapping[str, Any] | None) -> Problem:
    if not isinstance(problem, str):
        raise TypeError(f"problem must be a registered name, got {type(problem).__name__}")
    return problems.get(problem, **dict(problem_options or {}))


class ProblemDataModule(CollocationDataModule):
    """Collocation points of a registered problem, resampled every step, plus its evaluation set.

    Args:
        problem: registered problem name (``lightning-pinn list``).
        problem_options: problem parameters, e.g. ``{"nu": 0.01}``.
        seed: sampling seed; batch i on rank r is drawn from ``(seed, r, i)``.
        method: ``"uniform"``, ``"lhs"`` or ``"sobol"``.
        points: point counts per set overriding the problem's defaults, e.g.
            ``{"residual": 500, "initial": 100}``.
        eval_batch_size: points per validation batch.
        resample: draw new collocation points every step (default), or draw them once and
            train on the same points throughout (``false``).

    Raises:
        ValueError: unknown problem (close matches listed), parameter or point-set name.
    """

    def __init__(
        self,
        problem: str = "burgers",
        problem_options: dict[str, Any] | None = None,
        seed: int = 0,
        method: SamplingMethod = "uniform",
        points: dict[str, int] | None = None,
        eval_batch_size: int = 8192,
        resample: bool = True,
    ) -> None:
        spec = _problem(problem, problem_options)
        sets = spec.point_sets()
        for name, n in (points or {}).items():
            if name not in sets:
                raise ValueError(
                    f"data.points: unknown point set {name!r}; {spec.name} has {list(sets)}"
                )
            sets[name] = PointSet(sets[name].region, int(n))
        super().__init__(
            sets,
            seed=seed,
            method=method,
            eval_points=spec.eval_points(),
            reference=spec.reference,
            eval_batch_size=eval_batch_size,
            resample=resample,
        )
        self.problem = spec
        self.problem_name = problem


class ConfigProblemModule(ProblemModule):
    """:class:`ProblemModule` for ``LightningCLI`` / YAML.

    Its signature is :class:`~lightning_pinn.PINNModule`'s keyword options (``lr``,
    ``strategy``, ``optimizer``, ...; the module fills ``model``, ``loss_names`` and
    ``field_names`` from the problem) after the three below, generated at import time rather
    than copied, so the YAML keys follow the module.

    Args:
        problem: registered problem name (linked from ``data.problem`` by the CLI).
        problem_options: problem parameters (linked from ``data.problem_options``).
        trunk: the network (``class_path`` + ``init_args``); the problem's default if ``None``.
        strategy_options: options of the named strategies that follow the module across a
            switch (e.g. ``{blockwise: true}`` for a later ``surgery``); a strategy object
            under ``strategy`` carries its own options instead.
        **kwargs: the other :class:`~lightning_pinn.PINNModule` options. Each strategy option
            (``rank``, ``blockwise``, ...) is also accepted as a flat key, as configs written
            before ``strategy_options`` existed spell it; a key left at ``null`` is not passed.
    """

    def __init__(
        self,
        problem: str = "burgers",
        problem_options: dict[str, Any] | None = None,
        trunk: nn.Module | None = None,
        strategy_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        flat = {k: kwargs.pop(k) for k in strategy_option_names() if k in kwargs}
        given = {k: v for k, v in flat.items() if v is not None}
        clash = sorted(set(given) & set(strategy_options or {}))
        if clash:
            raise ValueError(
                f"strategy option(s) {clash} given both as flat keys and under "
                "strategy_options; give each once"
            )
        super().__init__(
            _problem(problem, problem_options),
            trunk=trunk,
            **kwargs,
            **given,
            **dict(strategy_options or {}),
        )


def _config_signature() -> inspect.Signature:
    """``ConfigProblemModule``'s own leading parameters, then ``PINNModule``'s keyword options
    with resolved annotations (jsonargparse reads these)."""
    own = inspect.signature(ConfigProblemModule.__init__).parameters
    own_hints = typing.get_type_hints(ConfigProblemModule.__init__)
    params = [own["self"]] + [
        own[n].replace(annotation=own_hints[n]) for n in ("problem", "problem_options", "trunk")
    ]
    hints = typing.get_type_hints(PINNModule.__init__)
    filled = {"self", "model", "loss_names", "field_names"}
    for name, param in inspect.signature(PINNModule.__init__).parameters.items():
        if name in filled or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        params.append(param.replace(kind=param.KEYWORD_ONLY, annotation=hints[name]))
    params.append(
        own["strategy_options"].replace(
            kind=inspect.Parameter.KEYWORD_ONLY, annotation=own_hints["strategy_options"]
        )
    )
    # Flat strategy options (``model.rank: 8``), the spelling of configs written before
    # ``strategy_options``; the strategy validates their values when it is built.
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Any)
        for name in strategy_option_names()
    ]
    return inspect.Signature(params)


ConfigProblemModule.__init__.__signature__ = _config_signature()  # type: ignore[attr-defined]


class _SaveConfigWhenLogged(SaveConfigCallback):
    """Lightning's config saver, but only into a logger's directory: without a logger the run
    writes no file (Lightning would fall back to the working directory)."""

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.loggers:
            super().setup(trainer, pl_module, stage)


class PINNLightningCLI(LightningCLI):
    """``LightningCLI`` with the problem linked from data to model, a progress display that
    stays readable in log files, and a final summary."""

    @override
    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("data.problem", "model.problem")
        parser.link_arguments("data.problem_options", "model.problem_options")

    @override
    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """Add a line-per-step-interval progress display when stdout is not a terminal and
        the config neither turns the display off nor names its own progress bar."""
        config = self.config_init[self.subcommand]["trainer"]
        callbacks = list(config.get("callbacks") or [])
        if not any(isinstance(cb, ProgressBar) for cb in callbacks):
            extra = progress_callbacks(bool(config.get("enable_progress_bar", True)))
            if extra:
                kwargs["callbacks"] = [*callbacks, *extra]
        return super().instantiate_trainer(**kwargs)

    @override
    def after_fit(self) -> None:
        """Validate once more, print the summary, save the prediction figure (rank 0)."""
        trainer, model = self.trainer, self.model
        with quiet_lightning():
            val = trainer.validate(model, datamodule=self.datamodule, verbose=False)
        if not trainer.is_global_zero:
            return
        lines = [
            f"problem: {model.problem.name}   steps: {model.train_steps}   "
            f"strategy: {model.strategy_name}"
        ]
        if val and "val/rel_l2" in val[0]:
            lines.append(f"relative L2 error: {float(val[0]['val/rel_l2']):.4e}")
        for cb in trainer.callbacks:
            if isinstance(cb, ConflictCallback) and cb.report is not None:
                lines.append(f"regime: {cb.report.regime} -> {cb.report.strategy}")
        log_dir = Path(trainer.log_dir) if trainer.loggers and trainer.log_dir else None
        if log_dir is not None:
            paths = save_prediction(model, model.problem, log_dir)
            lines.append(f"prediction figure: {paths['figure']}")
            lines.append(f"logs: {log_dir}")
        print("\n".join(lines))


def fit_main(argv: Sequence[str] | None = None) -> PINNLightningCLI:
    """Run ``LightningCLI``'s ``fit`` with ``argv`` (the arguments after ``fit``).

    Args:
        argv: e.g. ``["--config", "examples/configs/burgers.yaml", "--trainer.max_steps", "10"]``;
            ``--print_config`` prints the resolved config and exits.

    Returns:
        The finished CLI (``.model``, ``.trainer``, ``.datamodule``).
    """
    return PINNLightningCLI(
        ConfigProblemModule,
        ProblemDataModule,
        trainer_defaults=FIT_TRAINER_DEFAULTS,
        args=["fit", *(argv or [])],
        save_config_callback=_SaveConfigWhenLogged,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
