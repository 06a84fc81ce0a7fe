"""Relative L2 error at several step budgets, from runs with ``--val-every``.

    python benchmarks/budget_table.py RESULTS.jsonl [RESULTS.jsonl ...] [--steps 2000 5000 ...]

One row per record (problem, strategy, seed, module/run options): the rel L2 of its
``val_curve`` at each requested step (``—`` where the run did not validate at that step), the
best value along the curve and where it was reached. A run at the longest budget stands for
the shorter ones because data, schedule and probe depend on the step index only.
"""

from __future__ import annotations

import argparse

from lightning_pinn.benchmark import load_results


def rows(records: list[dict], steps: list[int]) -> list[list[str]]:
    out = []
    for r in sorted(records, key=lambda r: (r["problem"], r["strategy"], r["seed"])):
        curve = {int(s): v for s, v in r.get("val_curve") or []}
        if not curve:
            continue
        best_step = min(curve, key=curve.get)
        opts = {**r.get("options", {}), **r.get("run_options", {})}
        opts.pop("val_every", None)
        out.append(
            [
                r["problem"],
                r["strategy"] + (f" → {r['final_strategy']}" if r["strategy"] == "auto" else ""),
                str(r["seed"]),
                ", ".join(f"{k}={v}" for k, v in sorted(opts.items())) or "—",
                *(f"{curve[s]:.3g}" if s in curve else "—" for s in steps),
                f"{curve[best_step]:.3g} @ {best_step}",
            ]
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--steps", nargs="+", type=int, default=[2000, 5000, 10000, 20000])
    args = parser.parse_args(argv)
    records = [r for path in args.results for r in load_results(path)]
    head = ["problem", "strategy", "seed", "options", *map(str, args.steps), "best @ step"]
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|" + "---:|" * (len(args.steps) + 1))
    for row in rows(records, args.steps):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
