"""Are the programs search picks held back by their structure or by their constants?

`genlab evolve tune` (genlab/search/funsearch/tune.py) tunes a program's numeric literals on
the training instances after the model wrote it, as LLM-SR fits an equation's parameters.
This takes the best program of every committed run of bench/evolve_small_model.py and tunes
it as the command does by default: VARIANTS copies with every literal but 0 multiplied by its
own factor exp(N(0, SIGMA)), scored in the sandbox on the spec's training instances, the best
kept if it beats the program. Both programs are then
scored on bench/evolve_validation.py's 80 generated instances; the held-out OR1-OR4 and
Weibull 5k figures of a changed program are reported, never used to choose anything
(VARIANTS and SIGMA were set before any was scored).

    .venv/bin/python bench/evolve_constants.py

Writes bench/results/evolve_constants.json (about 4 minutes on two cores).
"""

from __future__ import annotations

import json
import time

from common import RESULTS, write
from evolve_validation import figures, validation_sets

from genlab.search.funsearch.evaluator import Evaluation, Evaluator
from genlab.search.funsearch.report import score_program
from genlab.search.funsearch.spec import load_spec
from genlab.search.funsearch.tune import SIGMA, VARIANTS, count_literals, tune_constants


def training_bins(evaluation: Evaluation) -> float | None:
    return -sum(evaluation.scores.values()) if evaluation.valid else None


def main() -> None:
    spec = load_spec("bin-packing")
    evaluator = Evaluator(spec)
    sets = validation_sets()
    best_fit_code = spec.namespace["BASELINES"]["Best Fit"]
    best_fit_train = training_bins(evaluator.evaluate(best_fit_code))
    best_fit_val = figures(spec, best_fit_code, sets, evaluator)
    best_fit_held = {name: row["metric"]["value"] for name, row in
                     score_program(spec, best_fit_code, spec.test_inputs(), evaluator).items()}

    def saved(code: str) -> dict[str, int]:
        mine = figures(spec, code, sets, evaluator)
        return {name: round(best_fit_val[name]["bins"] - mine[name]["bins"]) for name in sets}

    programs: dict[str, list[str]] = {}
    held_out_win: dict[str, bool] = {}  # as the run's bench scored it
    for path in sorted(RESULTS.glob("evolve_small_model*.json")):
        for run in json.loads(path.read_text())["runs"]:
            programs.setdefault(run["at_end"]["code"], []).append(f"{path.stem} {run['mode']} seed {run['seed']}")
            held_out_win[run["at_end"]["code"]] = run["at_end"]["beats_best_fit_on_or1_or4"]
    started = time.monotonic()
    rows = []
    for code, runs in programs.items():
        if not count_literals(code):
            continue
        given = evaluator.evaluate(code)
        result = tune_constants(code, evaluator, given=given)
        tuned = result.code
        base_bins, tuned_bins = training_bins(given), training_bins(result.evaluation)
        row = {"runs": runs, "training_bins": base_bins, "tuned_training_bins": tuned_bins,
               "validation_saved": saved(code), "beats_best_fit_on_or1_or4": held_out_win[code]}
        if tuned != code:
            held = {name: r["metric"]["value"] if "metric" in r else None
                    for name, r in score_program(spec, tuned, spec.test_inputs(), evaluator).items()}
            row.update(tuned_code=tuned, tuned_validation_saved=saved(tuned), tuned_held_out=held,
                       tuned_beats_best_fit_on_or1_or4=all(held[d] is not None and held[d] < best_fit_held[d]
                                                           for d in held if d.startswith("OR")))
        else:
            row.update(tuned_validation_saved=row["validation_saved"],
                       tuned_beats_best_fit_on_or1_or4=row["beats_best_fit_on_or1_or4"])
        rows.append(row)
        print(f"{runs[0]}: training {base_bins:.0f} -> {tuned_bins:.0f}, validation saved "
              f"{sum(row['validation_saved'].values())} -> {sum(row['tuned_validation_saved'].values())}")

    def at_every_size(key: str) -> int:
        return sum(all(v > 0 for v in r[key].values()) for r in rows)

    summary = {
        "programs": len(programs), "with_literals": len(rows),
        "changed_on_training": sum(r["tuned_training_bins"] < r["training_bins"] for r in rows),
        "beat_best_fit_on_training": {"before": sum(r["training_bins"] < best_fit_train for r in rows),
                                      "after": sum(r["tuned_training_bins"] < best_fit_train for r in rows)},
        "beat_best_fit_on_validation_in_total": {
            "before": sum(sum(r["validation_saved"].values()) > 0 for r in rows),
            "after": sum(sum(r["tuned_validation_saved"].values()) > 0 for r in rows)},
        "beat_best_fit_on_validation_at_every_size": {"before": at_every_size("validation_saved"),
                                                      "after": at_every_size("tuned_validation_saved")},
        "beat_best_fit_on_or1_or4": {"before": sum(r["beats_best_fit_on_or1_or4"] for r in rows),
                                     "after": sum(r["tuned_beats_best_fit_on_or1_or4"] for r in rows)},
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    write("evolve_constants", {"variants": VARIANTS, "sigma": SIGMA, "best_fit_training_bins": best_fit_train,
                               "best_fit_held_out": best_fit_held,
                               "summary": summary, "programs": rows})


if __name__ == "__main__":
    main()
