"""One run of a registered problem — what ``lightning-pinn run`` does.

- :mod:`~lightning_pinn.run._config`: :class:`RunConfig`, the typed config the ``run`` flags
  are generated from, and :data:`TRAINER_DEFAULTS` (shared with ``fit --config``);
- :mod:`~lightning_pinn.run._trainer` and :mod:`~lightning_pinn.run._progress`: logger
  (a version folder claimed atomically, reused on resume), ``Trainer`` and a progress display
  that stays readable in log files;
- :mod:`~lightning_pinn.run._checks` and :mod:`~lightning_pinn.run._threads`: the checkpoint
  and output directory checked before training, the default torch threads;
- :mod:`~lightning_pinn.run._experiment`: :func:`run_experiment` (probe, diagnose, switch,
  train, report) and its summary;
- :mod:`~lightning_pinn.run._recipes`: :class:`Recipe`, :func:`load_recipe` and
  :func:`apply_recipe` (a problem's recommended set-up, YAML under ``examples/recipes/``);
- :mod:`~lightning_pinn.run._plots`: prediction-vs-reference figures and the error field.
"""

from lightning_pinn.run._checks import check_checkpoint, check_out_dir
from lightning_pinn.run._config import (
    CHECKPOINT_EVERY_MAX,
    RUN_RULE,
    TRAINER_DEFAULTS,
    RunConfig,
    StrategyFlags,
)
from lightning_pinn.run._experiment import (
    LossCurve,
    ValidationCurve,
    format_summary,
    run_experiment,
)
from lightning_pinn.run._plots import (
    PredictionField,
    plot_prediction,
    prediction_field,
    save_prediction,
)
from lightning_pinn.run._progress import LineProgressBar, progress_callbacks
from lightning_pinn.run._recipes import Recipe, apply_recipe, load_recipe, recipe_names
from lightning_pinn.run._threads import default_threads, oversubscription
from lightning_pinn.run._trainer import (
    AtomicCheckpointIO,
    build_trainer,
    claim_version_dir,
    make_logger,
    resumed_version_dir,
)

__all__ = [
    "RUN_RULE",
    "CHECKPOINT_EVERY_MAX",
    "AtomicCheckpointIO",
    "TRAINER_DEFAULTS",
    "LineProgressBar",
    "LossCurve",
    "PredictionField",
    "Recipe",
    "RunConfig",
    "StrategyFlags",
    "ValidationCurve",
    "apply_recipe",
    "build_trainer",
    "check_checkpoint",
    "check_out_dir",
    "claim_version_dir",
    "default_threads",
    "format_summary",
    "load_recipe",
    "make_logger",
    "plot_prediction",
    "prediction_field",
    "oversubscription",
    "progress_callbacks",
    "recipe_names",
    "resumed_version_dir",
    "run_experiment",
    "save_prediction",
]
