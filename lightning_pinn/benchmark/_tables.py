"""Benchmark outputs: the markdown table and :func:`analyze`, which writes every output of a
results file (``table.md``, ``selection.json``, ``regime_map.png``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning_pinn.benchmark._cells import ALL_STRATEGIES, current_records, load_results
from lightning_pinn.benchmark._figures import plot_regime_map
from lightning_pinn.benchmark._selection import (
    by_config,
    calibrate,
    median_rel_l2,
    probe_reports,
    selection_accuracy,
)

__all__ = ["analyze", "markdown_table"]


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def markdown_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Per-configuration table: probe statistics, median rel L2 per strategy, selection."""
    table = by_config(records)
    strategies = [s for s in ALL_STRATEGIES if any(s in v for v in table.values())]
    strategies += sorted({c for v in table.values() for c in v} - set(ALL_STRATEGIES))
    sel = {r["config"]: r for r in selection_accuracy(records)["rows"]}
    head = ["config", "K", "regime", "late rate", "imbalance", *strategies, "best", "pick", "hit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for config in sorted(table):
        by_strategy = table[config]
        any_rec = next(iter(by_strategy.values()))[0]
        row = sel.get(config)
        reports = probe_reports(by_strategy)
        k = len(reports[0]["loss_names"]) if reports else len(any_rec.get("final_losses", {}))
        cells = [
            config,
            str(k),
            row["regime"] if row else (reports[0]["regime"] if reports else "—"),
            _fmt(row["late_conflict_rate"]) if row else "—",
            _fmt(row["median_imbalance"]) if row else "—",
        ]
        for s in strategies:
            cells.append(_fmt(median_rel_l2(by_strategy[s])) if by_strategy.get(s) else "—")
        cells += [row["best"], row["pick"], "yes" if row["hit"] else "no"] if row else ["—"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def analyze(out: str | Path) -> dict[str, Any]:
    """Write ``table.md``, ``selection.json`` and ``regime_map.png`` for ``out/results.jsonl``.

    Only the records of each recipe's current version count (:func:`current_records`).

    Args:
        out: the benchmark's output directory.

    Returns:
        ``{"selection": selection_accuracy(...), "calibration": calibrate(...)}``.

    Raises:
        ValueError: the results file is missing or empty.
    """
    out = Path(out)
    records = current_records(load_results(out / "results.jsonl"))
    if not records:
        raise ValueError(f"no results in {out / 'results.jsonl'}; run the benchmark first")
    selection = selection_accuracy(records)
    calibration = calibrate(records)
    (out / "table.md").write_text(markdown_table(records) + "\n")
    (out / "selection.json").write_text(
        json.dumps({"selection": selection, "calibration": calibration}, indent=2)
    )
    plot_regime_map(records, out / "regime_map.png")
    return {"selection": selection, "calibration": calibration}
