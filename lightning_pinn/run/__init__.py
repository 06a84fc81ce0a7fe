"""One run of a registered problem — what ``lightning-pinn run`` does.

- :mod:`~lightning_pinn.run._config`: :class:`RunConfig`, the typed config the ``run`` flags
  are generated from, and :data:`TRAINER_DEFAULTS` (shared with ``fit --config``);
- :mod:`~lightning_pinn.run._trainer` and :mod:`~lightning_pinn.run._progress`: logger,
  ``Trainer`` and a progress display that stays readable in log files;
- :mod:`~lightning_pinn.run._experiment`: :func:`run_experiment` (probe, diagnose, switch,
  train, report) and its summary;
- :mod:`~lightning_pinn.run._plots`: prediction-vs-reference figures and the error field.
"""

from lightning_pinn.run._config import TRAINER_DEFAULTS, RunConfig, StrategyFlags
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
from lightning_pinn.run._trainer import build_trainer, make_logger

__all__ = [
    "TRAINER_DEFAULTS",
    "LineProgressBar",
    "LossCurve",
    "PredictionField",
    "RunConfig",
    "StrategyFlags",
    "ValidationCurve",
    "build_trainer",
    "format_summary",
    "make_logger",
    "plot_prediction",
    "prediction_field",
    "progress_callbacks",
    "run_experiment",
    "save_prediction",
]
