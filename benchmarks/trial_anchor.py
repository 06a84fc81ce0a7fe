"""Replay a guarded switch that keeps a fixed *anchor* candidate unless beaten by a margin.

    python benchmarks/trial_anchor.py RESULTS.jsonl

Like ``trial_scores.py``'s margin table, but the protected candidate is a named strategy
(``reweight``, ``none`` or ``adapters``, when it was tried) instead of the diagnosis's first
choice: the anchor is kept unless another candidate's geomean score times ``1 + m`` is below
its own. Final errors are the same-seed fixed-strategy runs (the proxy of trial_scores.py).
Prints ``pick`` (share within 1.25x of the best tried), the geometric-mean error and the case
count, per half.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import trial_scores as ts  # noqa: E402

from lightning_pinn.benchmark import current_records, load_results  # noqa: E402

MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, math.inf)


def anchored(cases: list[dict], anchor: str, margin: float, how: str = "geomean") -> dict:
    def choose(case: dict) -> int:
        names = [name for name, _, _ in case["rows"]]
        values = [ts.score_value(losses, how) for _, losses, _ in case["rows"]]
        a = names.index(anchor) if anchor in names else 0
        best = min(range(len(values)), key=values.__getitem__)
        return a if values[a] <= values[best] * (1 + margin) else best

    return ts._by_half(cases, choose)


def main(argv: list[str]) -> None:
    records = [r for path in argv for r in current_records(load_results(path))]
    cases = ts.cases(records)
    print(
        "| anchor | margin | calibration pick | calibration geomean error | held-out pick "
        "| held-out geomean error | cases (cal / held) |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for anchor in ("reweight", "none", "adapters"):
        for m in MARGINS:
            r = anchored(cases, anchor, m)
            c, h = r["calibration"], r["held_out"]
            print(
                f"| {anchor} | {m:g} | {c['pick']:.0%} | {c['geomean_error']:.3g} | "
                f"{h['pick']:.0%} | {h['geomean_error']:.3g} | {c['n']} / {h['n']} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["docs/data/recipe_map.jsonl"])
