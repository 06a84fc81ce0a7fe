"""``lightning-pinn fit --config FILE.yaml``: train a registered problem through ``LightningCLI``.

The model is :class:`ConfigProblemModule` (a :class:`~lightning_pinn.problems.ProblemModule`
with an explicit signature, so every :class:`~lightning_pinn.PINNModule` option is a YAML key),
the data is :class:`ProblemDataModule`, and the trainer and its callbacks (``ConflictCallback``
included) come from the YAML. The problem is named once, under ``data``; ``data.problem`` and
``data.problem_options`` are linked into the model, so the two can never disagree.

Example config::

    data:
      problem: burgers
      points: {residual: 2000, initial: 200, boundary: 200}
    model:
      lr: 1.0e-3
    trainer:
      max_steps: 2000
      callbacks:
        - class_path: lightning_pinn.ConflictCallback
          init_args: {probe_steps: 1000}
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.cli import LightningCLI
from torch import nn

from lightning_pinn.data import CollocationDataModule, PointSet, SamplingMethod
from lightning_pinn.problems import Problem, ProblemModule

__all__ = ["ConfigProblemModule", "PINNLightningCLI", "ProblemDataModule", "fit_main"]

# Trainer defaults for an infinite collocation stream: one epoch never ends, so the budget is
# max_steps and validation runs every ``val_check_interval`` training steps.
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 2000,
    "val_check_interval": 500,
    "check_val_every_n_epoch": None,
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 50,
    "enable_model_summary": False,
    "logger": {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": "runs", "name": "fit"},
    },
}


def _problem(problem: str, problem_options: Mapping[str, Any] | None) -> Problem:
    from lightning_pinn import problems

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
        )
        self.problem = spec
        self.problem_name = problem


class ConfigProblemModule(ProblemModule):
    """:class:`ProblemModule` with an explicit signature for ``LightningCLI`` / YAML.

    ``ProblemModule(problem, trunk, problem_options, **kwargs)`` forwards ``**kwargs`` to
    :class:`~lightning_pinn.PINNModule`; jsonargparse cannot tell that ``ProblemModule`` fills
    ``model`` and ``loss_names`` itself, so this subclass names every option explicitly (the
    arguments mean what they mean in :class:`~lightning_pinn.PINNModule`).

    Args:
        problem: registered problem name (linked from ``data.problem`` by the CLI).
        problem_options: problem parameters (linked from ``data.problem_options``).
        trunk: the network (``class_path`` + ``init_args``); the problem's default if ``None``.
        lr: learning rate.
        strategy: starting strategy (``ConflictCallback`` may switch it after the probe).
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        weight_decay: optimizer weight decay.
        lr_decay_rate: step-decay factor of the learning rate.
        lr_decay_steps: step-decay interval.
        on_nonfinite: ``"raise"`` or ``"skip"``.
        fp32_losses: compute PDE derivatives with autocast off.
        reweighting: rule of ``reweight``/``adapters``.
        reweighting_options: options of the rule.
        rank: adapter rank.
        alpha: adapter scaling numerator.
        routing: ``"own"`` or ``"shared"``.
        adapter_lr_mult: adapter learning-rate multiplier.
        target: name pattern of the ``nn.Linear`` layers that get adapters (all if ``None``).
        adapter_seed: adapter initialisation seed.
        aggregator: aggregator of ``surgery``.
        blockwise: aggregate per parameter block.
        surgery_seed: seed of randomised aggregators.
    """

    def __init__(
        self,
        problem: str = "burgers",
        problem_options: dict[str, Any] | None = None,
        trunk: nn.Module | None = None,
        lr: float = 1e-3,
        strategy: Literal["none", "reweight", "adapters", "surgery"] = "none",
        optimizer: Literal["adam", "adamw", "sgd"] = "adam",
        weight_decay: float = 0.0,
        lr_decay_rate: float = 1.0,
        lr_decay_steps: int = 1000,
        on_nonfinite: Literal["raise", "skip"] = "raise",
        fp32_losses: bool = True,
        reweighting: str = "gradnorm",
        reweighting_options: dict[str, Any] | None = None,
        rank: int = 4,
        alpha: float | None = None,
        routing: Literal["own", "shared"] = "own",
        adapter_lr_mult: float = 0.1,
        target: str | None = None,
        adapter_seed: int = 0,
        aggregator: str = "upgrad",
        blockwise: bool = False,
        surgery_seed: int = 0,
    ) -> None:
        super().__init__(
            _problem(problem, problem_options),
            trunk=trunk,
            lr=lr,
            strategy=strategy,
            optimizer=optimizer,
            weight_decay=weight_decay,
            lr_decay_rate=lr_decay_rate,
            lr_decay_steps=lr_decay_steps,
            on_nonfinite=on_nonfinite,
            fp32_losses=fp32_losses,
            reweighting=reweighting,
            reweighting_options=reweighting_options,
            rank=rank,
            alpha=alpha,
            routing=routing,
            adapter_lr_mult=adapter_lr_mult,
            target=target,
            adapter_seed=adapter_seed,
            aggregator=aggregator,
            blockwise=blockwise,
            surgery_seed=surgery_seed,
        )


class PINNLightningCLI(LightningCLI):
    """``LightningCLI`` with the problem linked from data to model and a final summary."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("data.problem", "model.problem")
        parser.link_arguments("data.problem_options", "model.problem_options")

    def after_fit(self) -> None:
        """Validate once more, print the summary, save the prediction figure (rank 0)."""
        from lightning_pinn.callbacks import ConflictCallback

        trainer, model = self.trainer, self.model
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            val = trainer.validate(model, datamodule=self.datamodule, verbose=False)
        if not trainer.is_global_zero:
            return
        lines = [f"problem: {model.problem.name}   steps: {model.train_steps}   "
                 f"strategy: {model.strategy_name}"]
        if val and "val/rel_l2" in val[0]:
            lines.append(f"relative L2 error: {float(val[0]['val/rel_l2']):.4e}")
        for cb in trainer.callbacks:
            if isinstance(cb, ConflictCallback) and cb.report is not None:
                lines.append(f"regime: {cb.report.regime} -> {cb.report.strategy}")
        log_dir = Path(trainer.log_dir) if trainer.log_dir else None
        if log_dir is not None:
            from lightning_pinn.plots import save_prediction

            paths = save_prediction(model, model.problem, log_dir)
            lines.append(f"prediction figure: {paths['figure']}")
            lines.append(f"logs: {log_dir}")
        print("\n".join(lines))


def fit_main(argv: Sequence[str] | None = None) -> None:
    """Run ``LightningCLI``'s ``fit`` with ``argv`` (the arguments after ``fit``).

    Args:
        argv: e.g. ``["--config", "examples/configs/burgers.yaml", "--trainer.max_steps", "10"]``;
            ``--print_config`` prints the resolved config and exits.
    """
    args = ["fit", *(argv or [])]
    PINNLightningCLI(
        ConfigProblemModule,
        ProblemDataModule,
        trainer_defaults=TRAINER_DEFAULTS,
        args=args,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
