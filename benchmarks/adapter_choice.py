"""Choose adapter settings on the calibration half of the regime map, report the held-out half.

    python benchmarks/adapter_choice.py MAP.jsonl NAME=VARIANT.jsonl [NAME=VARIANT.jsonl ...]

``MAP.jsonl`` holds the regime map (strategies none, reweight, adapters); each
``VARIANT.jsonl`` runs of ``lightning-pinn benchmark --strategies adapters --module-options
...`` with one adapter setting. Only seed 0 is compared (the variants ran one seed). For each
variant on the calibration half (:func:`lightning_pinn.benchmark.split_configs` of the map's
configurations) it prints the geometric mean of its rel L2 over the default adapters' (< 1:
better), on how many configurations it beats the default, and on how many it is within 1.25x of
the best fixed strategy (none, reweight, default adapters). The variant with the lowest
geometric mean is the choice; the same figures are then printed for it on the held-out half,
where nothing was chosen, with the diagnosis's selection accuracy (seed 0, default thresholds)
before and after `adapters` takes the chosen setting.
"""

from __future__ import annotations

import math
import statistics
import sys

from lightning_pinn.benchmark import TOLERANCE, load_results, selection_accuracy, split_configs

FIXED = ("none", "reweight", "adapters")


def _seed0(records: list[dict]) -> dict[tuple[str, str], float]:
    return {(r["problem"], r["strategy"]): r["rel_l2"] for r in records if r["seed"] == 0}


def score(base: dict, variant: dict[str, float], configs: list[str]) -> dict | None:
    """Figures of one variant on ``configs`` (those it and the map both ran)."""
    names = [c for c in configs if c in variant and all((c, s) in base for s in FIXED)]
    if not names:
        return None
    ratios = [variant[c] / base[(c, "adapters")] for c in names]
    best = {c: min(base[(c, s)] for s in FIXED) for c in names}
    return {
        "configs": len(names),
        "geo_mean_ratio": math.exp(statistics.mean(math.log(r) for r in ratios)),
        "beats_default": sum(r < 1 for r in ratios),
        "within_tolerance_of_best_fixed": sum(variant[c] <= TOLERANCE * best[c] for c in names),
        "default_within_tolerance": sum(
            base[(c, "adapters")] <= TOLERANCE * best[c] for c in names
        ),
    }


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        print(__doc__)
        return
    records = load_results(argv[0])
    base = _seed0(records)
    configs = [r["config"] for r in selection_accuracy(records)["rows"]]
    calib, held = split_configs(configs)
    variant_records, variants = {}, {}
    for spec in argv[1:]:
        name, _, path = spec.partition("=")
        variant_records[name] = load_results(path)
        variants[name] = {p: v for (p, s), v in _seed0(variant_records[name]).items()}
    print(
        "| variant | half | configs | geo-mean rel L2 / default | beats default "
        "| within 1.25x of best fixed (default) |"
    )
    print("|---|---|---:|---:|---:|---:|")

    def line(name: str, half: str, s: dict) -> None:
        print(
            f"| {name} | {half} | {s['configs']} | {s['geo_mean_ratio']:.3f} | "
            f"{s['beats_default']} | {s['within_tolerance_of_best_fixed']} "
            f"({s['default_within_tolerance']}) |"
        )

    scored = {n: score(base, v, calib) for n, v in variants.items()}
    scored = {n: s for n, s in scored.items() if s is not None}
    for name, s in sorted(scored.items(), key=lambda kv: kv[1]["geo_mean_ratio"]):
        line(name, "calibration", s)
    if not scored:
        return
    choice = min(scored, key=lambda n: scored[n]["geo_mean_ratio"])
    held_score = score(base, variants[choice], held)
    if held_score is not None:
        line(f"**{choice}** (chosen)", "held-out", held_score)
    # The diagnosis's selection accuracy (default thresholds, seed 0) when `adapters` means
    # the chosen setting, on the configurations the chosen variant ran.
    seed0 = [r for r in records if r["seed"] == 0]
    swapped = [r for r in seed0 if r["strategy"] != "adapters"] + [
        {**r, "strategy": "adapters"}
        for r in variant_records[choice]
        if r["seed"] == 0 and r["strategy"] == "adapters"
    ]
    ran = set(variants[choice])
    print()
    print("| half | configs | selection accuracy, default adapters | with the chosen setting |")
    print("|---|---:|---:|---:|")
    for half, names in (("calibration", calib), ("held-out", held)):
        names = [c for c in names if c in ran]
        before = selection_accuracy(seed0, configs=names)
        after = selection_accuracy(swapped, configs=names)
        if before["rows"] and after["rows"]:
            print(
                f"| {half} | {len(after['rows'])} | {before['accuracy']:.0%} | "
                f"{after['accuracy']:.0%} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
