"""Do the programs that evolution picked beat Best Fit on instances it never saw, generated alike?

Every comparison of bench/evolve_small_model.py commits the best program of each run. This
script scores those programs on a generated validation set: 20 instances each of 120, 250,
500 and 1000 items, drawn like the training instances (sizes 20..100, capacity 150) from
another seed. It is the yardstick for choices about the search (training set, grammar,
settings) that OR1-OR4 and Weibull 5k must not be used for: it has their shape, so a program
that only fits its training instances shows here, before anything is held out.

    .venv/bin/python bench/evolve_validation.py

Writes bench/results/evolve_validation.json. Figures are excess bins over the L1 bound, in %,
as in the paper's Table 1; "bins saved" is against Best Fit, summed over a size's 20 instances.
"""

from __future__ import annotations

import json

import numpy as np
from common import RESULTS, write

from genlab.search.funsearch.evaluator import Evaluator
from genlab.search.funsearch.report import score_program
from genlab.search.funsearch.spec import load_spec

SIZES = (120, 250, 500, 1000)
SEED = 20241231  # the training set is drawn from 20240101


def validation_sets() -> dict[str, dict]:
    rng = np.random.default_rng(SEED)
    return {f"{n} items": {f"val_{n}_{i:02d}": {"capacity": 150, "items": rng.integers(20, 101, size=n).tolist()}
                           for i in range(20)} for n in SIZES}


def figures(spec, code: str, sets: dict, evaluator: Evaluator) -> dict:
    results = score_program(spec, code, sets, evaluator)
    return {name: {"excess_pct": row["metric"]["value"], "bins": -row["score"] * len(sets[name])}
            for name, row in results.items()}


def main() -> None:
    spec = load_spec("bin-packing")
    sets = validation_sets()
    evaluator = Evaluator(spec)  # one sandbox check for all the programs
    baselines = {name: figures(spec, code, sets, evaluator) for name, code in spec.namespace["BASELINES"].items()}
    best_fit = baselines["Best Fit"]
    scored: dict[str, dict] = {}
    comparisons = {}
    for path in sorted(RESULTS.glob("evolve_small_model*.json")):
        data = json.loads(path.read_text())
        runs = []
        for run in data["runs"]:
            best = run["at_end"]
            if best["code"] not in scored:
                scored[best["code"]] = figures(spec, best["code"], sets, evaluator)
            mine = scored[best["code"]]
            saved = {name: round(best_fit[name]["bins"] - mine[name]["bins"]) for name in sets}
            runs.append({"mode": run["mode"], "seed": run["seed"], "sample": best["sample"],
                         "validation": {name: round(mine[name]["excess_pct"], 3) for name in sets},
                         "bins_saved_vs_best_fit": saved,
                         "beats_best_fit_at_every_size": all(v > 0 for v in saved.values()),
                         "held_out_beats_best_fit_on_or1_or4": best["beats_best_fit_on_or1_or4"]})
        for mode in dict.fromkeys(r["mode"] for r in runs):
            mine = [r for r in runs if r["mode"] == mode]
            summary = comparisons[f"{path.stem} {mode}"] = {
                "runs": mine,
                "beats_best_fit_at_every_size": sum(r["beats_best_fit_at_every_size"] for r in mine),
                "bins_saved_total": [sum(r["bins_saved_vs_best_fit"].values()) for r in mine],
            }
            print(f"{path.stem} {mode}: beats Best Fit at every size in {summary['beats_best_fit_at_every_size']} "
                  f"of {len(mine)}; bins saved {summary['bins_saved_total']}")
    write("evolve_validation", {
        "validation": {"seed": SEED, "sizes": SIZES, "instances_per_size": 20, "capacity": 150,
                       "item_sizes": [20, 100]},
        "baselines": {name: {s: round(f[s]["excess_pct"], 3) for s in sets} for name, f in baselines.items()},
        "comparisons": comparisons,
    })


if __name__ == "__main__":
    main()
