"""The regime map: problems × strategies × seeds, selection accuracy and calibration.

- :mod:`~lightning_pinn.benchmark._cells`: suites, cells, the resumable parallel run;
- :mod:`~lightning_pinn.benchmark._selection`: best strategy in hindsight, the diagnosis's
  pick, selection accuracy, threshold calibration;
- :mod:`~lightning_pinn.benchmark._tables` and :mod:`~lightning_pinn.benchmark._figures`:
  ``table.md``, ``selection.json`` and ``regime_map.png``.

``lightning-pinn benchmark`` (``docs/cli.md``) drives it; ``docs/results.md`` reports it.
"""

from lightning_pinn.benchmark._cells import (
    ALL_STRATEGIES,
    CELL_RULE,
    ESCALATED,
    GUARDED,
    GUARDED_TRIAL_FRACTION,
    RUN_OPTIONS,
    Cell,
    column,
    current_records,
    load_results,
    machine,
    make_cells,
    run_benchmark,
    suite,
    worker_pool,
)
from lightning_pinn.benchmark._figures import plot_regime_map
from lightning_pinn.benchmark._selection import (
    COMPARED,
    TOLERANCE,
    calibrate,
    diagnose_report,
    selection_accuracy,
    split_configs,
)
from lightning_pinn.benchmark._tables import analyze, markdown_table

__all__ = [
    "ALL_STRATEGIES",
    "COMPARED",
    "CELL_RULE",
    "ESCALATED",
    "GUARDED",
    "GUARDED_TRIAL_FRACTION",
    "RUN_OPTIONS",
    "TOLERANCE",
    "Cell",
    "column",
    "current_records",
    "analyze",
    "calibrate",
    "diagnose_report",
    "load_results",
    "machine",
    "make_cells",
    "markdown_table",
    "plot_regime_map",
    "run_benchmark",
    "selection_accuracy",
    "split_configs",
    "suite",
    "worker_pool",
]
