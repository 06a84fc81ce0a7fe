"""The callback's regime → intervention map, and applying the chosen intervention."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lightning_pinn.diagnostics import Regime, resolve_interventions
from lightning_pinn.module import PINNModule
from lightning_pinn.strategies import Strategy, strategy_names

__all__ = [
    "apply_intervention",
    "check_interventions",
    "intervention_map",
    "intervention_name",
]


def intervention_name(strategy: str | Strategy) -> str:
    """The registered name of a strategy given by name or as an object."""
    return strategy.name if isinstance(strategy, Strategy) else strategy


def intervention_map(
    interventions: Mapping[Regime | str, str | Strategy] | None,
) -> dict[str, str | Strategy]:
    """Regime value → strategy name or object: the defaults updated with the user's entries.

    Raises:
        ValueError: unknown regime or strategy name, or an object whose class is not
            registered (the report names the intervention by its registered name).
    """
    given = dict(interventions or {})
    for key, value in given.items():
        if isinstance(value, Strategy) and value.name not in strategy_names():
            raise ValueError(
                f"intervention {value!r} for regime {key!r} is a {type(value).__name__} named "
                f"{value.name!r}, which is not registered (registered: "
                f"{', '.join(strategy_names())}); register its class with "
                "lightning_pinn.strategies.register_strategy"
            )
    names = resolve_interventions({k: intervention_name(v) for k, v in given.items()})
    out: dict[str, str | Strategy] = {r.value: s for r, s in names.items()}
    for key, value in given.items():
        if isinstance(value, Strategy):
            out[Regime(key).value] = value
    return out


def apply_intervention(
    pl_module: PINNModule,
    choice: str | Strategy,
    regime: str,
    strategy_options: Mapping[str, Any],
) -> None:
    """Set ``choice`` on the module (a copy of an object: the map stays a template).

    A name equal to the active strategy's, with no options, keeps the strategy as it is.
    """
    if isinstance(choice, Strategy):
        rank_zero_info(
            f"ConflictCallback: switching strategy {pl_module.strategy_name!r} -> {choice!r} "
            f"({regime}) at step {pl_module.train_steps}"
        )
        pl_module.set_strategy(copy.deepcopy(choice))
        return
    if choice == pl_module.strategy_name and not strategy_options:
        rank_zero_info(f"ConflictCallback: keeping strategy {choice!r} ({regime})")
        return
    rank_zero_info(
        f"ConflictCallback: switching strategy {pl_module.strategy_name!r} -> {choice!r} "
        f"({regime}) at step {pl_module.train_steps}"
    )
    pl_module.set_strategy(choice, **strategy_options)


def check_interventions(
    pl_module: PINNModule,
    interventions: Mapping[str, str | Strategy],
    strategy_options: Mapping[str, Any],
) -> None:
    """Raise now what :func:`apply_intervention` would raise after the probe, for any regime.

    Raises:
        ValueError: an intervention the module cannot take (unknown option or rule, adapters
            on a network without a suitable ``nn.Linear`` or already wrapped, ...).
    """
    for regime, choice in interventions.items():
        kept = choice == pl_module.strategy_name and not strategy_options
        if not isinstance(choice, Strategy) and kept:
            continue  # apply_intervention keeps the strategy as it is
        try:
            if isinstance(choice, Strategy):
                pl_module.check_strategy(choice)
            else:
                pl_module.check_strategy(choice, **strategy_options)
        except ValueError as err:
            raise ValueError(
                f"ConflictCallback: the intervention for regime {regime!r} ({choice!r}) cannot "
                f"be applied to this module, so the switch after the probe would fail: {err}. "
                f"Map that regime to another intervention (interventions={{{regime!r}: "
                "'reweight', ...}), or pass auto_switch=False to diagnose only"
            ) from err
