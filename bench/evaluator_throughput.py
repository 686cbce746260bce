"""Evaluator throughput on bin packing: genlab's evaluator vs the notebook/reference style.

Both score the same programs on the same 20 training instances, in the same sandbox:
- reference style: the FunSearch notebook's skeleton, one sandboxed process per input
  (the reference evaluator calls its sandbox once per input);
- genlab: genlab's skeleton, one sandboxed process per program for all inputs;
- genlab, fresh interpreter: the same, each program in an interpreter of its own that imports
  numpy, as every run was before the forkserver (plus the fork of its supervisor, about a
  millisecond); and both with every core evaluating at once.
Scores must be identical. Also timed in-process, with no sandbox, per skeleton.

    .venv/bin/python bench/evaluator_throughput.py [--reps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

from common import fresh_interpreter_per_run, median, write

from genlab.search.funsearch.evaluator import Evaluator, top_level_imports
from genlab.search.funsearch.sandbox import Sandbox
from genlab.search.funsearch.spec import load_spec

NOTEBOOK_SKELETON = '''import numpy as np


def get_valid_bin_indices(item, bins):
    return np.nonzero((bins - item) >= 0)[0]


def online_binpack(items, bins):
    packing = [[] for _ in bins]
    for item in items:
        valid_bin_indices = get_valid_bin_indices(item, bins)
        priorities = priority(item, bins[valid_bin_indices])
        best_bin = valid_bin_indices[np.argmax(priorities)]
        bins[best_bin] -= item
        packing[best_bin].append(item)
    packing = [bin_items for bin_items in packing if bin_items]
    return packing, bins


def evaluate_one(instance):
    capacity = instance["capacity"]
    bins = np.array([capacity for _ in range(len(instance["items"]))])
    _, bins_packed = online_binpack(instance["items"], bins)
    return -float((bins_packed != capacity).sum())


'''

PROGRAMS = {
    "first fit": "def priority(item, bins):\n    return 0.0\n",
    "best fit": "def priority(item, bins):\n    return -(bins - item)\n",
    "paper-style": ("def priority(item, bins):\n    score = 1000 * np.ones(bins.shape)\n"
                    "    score -= bins * (bins - item)\n    index = np.argmin(bins)\n    score[index] *= item\n"
                    "    score[index] -= (bins[index] - item) ** 4\n    return score\n"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    spec = load_spec("bin-packing")
    inputs = spec.inputs()
    evaluator = Evaluator(spec)
    sandbox = Sandbox()

    def reference(code: str) -> dict[str, float]:
        program = NOTEBOOK_SKELETON + code
        return {name: sandbox.run(program, "evaluate_one", {name: instance}, top_level_imports(program))
                .outcomes[name].solution for name, instance in inputs.items()}

    results = {}
    for label, code in PROGRAMS.items():
        times = {"reference": [], "genlab": [], "fresh": []}
        for _ in range(args.reps):
            start = time.perf_counter()
            ref_scores = reference(code)
            times["reference"].append(time.perf_counter() - start)
            start = time.perf_counter()
            ours = evaluator.evaluate(code)
            times["genlab"].append(time.perf_counter() - start)
            assert ours.scores == ref_scores, (label, ours.scores, ref_scores)
            with fresh_interpreter_per_run():
                start = time.perf_counter()
                assert evaluator.evaluate(code).scores == ours.scores
                times["fresh"].append(time.perf_counter() - start)
        # In-process, no sandbox: the skeletons alone.
        ns_ref, ns_ours = {}, {}
        exec(NOTEBOOK_SKELETON + code, ns_ref)
        exec(spec.program(code), ns_ours)
        start = time.perf_counter()
        ref_inline = [ns_ref["evaluate_one"](i) for i in inputs.values()]
        inline_ref_s = time.perf_counter() - start
        start = time.perf_counter()
        ours_inline = [spec.score(i, ns_ours["solve"](i)) for i in inputs.values()]
        inline_ours_s = time.perf_counter() - start
        assert ref_inline == ours_inline
        ref_s, ours_s, fresh_s = median(times["reference"]), median(times["genlab"]), median(times["fresh"])
        results[label] = {"reference_s": ref_s, "genlab_s": ours_s, "ratio": ref_s / ours_s,
                          "fresh_interpreter_s": fresh_s, "forkserver_ratio": fresh_s / ours_s,
                          "inline_reference_s": inline_ref_s, "inline_genlab_s": inline_ours_s,
                          "inline_ratio": inline_ref_s / inline_ours_s, "mean_score": ours.score}
        print(f"{label:12s} sandboxed: reference {ref_s:6.2f} s/program, genlab {ours_s:5.2f} s/program "
              f"→ {ref_s / ours_s:4.1f}x; a fresh interpreter {fresh_s:5.3f} s/program, the forkserver "
              f"{fresh_s / ours_s:.2f}x faster · in-process skeletons: {inline_ref_s * 1000:6.1f} ms vs "
              f"{inline_ours_s * 1000:6.1f} ms ({inline_ref_s / inline_ours_s:.2f}x) · score {ours.score}")
    # Evaluations a second with every core evaluating (as `genlab evolve --eval-workers` does
    # when the model is remote), Best Fit on the training instances.
    cores = len(os.sched_getaffinity(0))
    parallel = {}
    for mode, how in (("fresh", fresh_interpreter_per_run), ("forkserver", contextlib.nullcontext)):
        with how(), ThreadPoolExecutor(cores) as pool:
            start = time.perf_counter()
            scores = list(pool.map(lambda _: evaluator.evaluate(PROGRAMS["best fit"]).score, range(10 * cores)))
            parallel[mode] = 10 * cores / (time.perf_counter() - start)
        assert len(set(scores)) == 1
    print(f"{cores} evaluations at a time: {parallel['fresh']:.1f} programs/s with a fresh interpreter each, "
          f"{parallel['forkserver']:.1f} with the forkserver ({parallel['forkserver'] / parallel['fresh']:.2f}x)")
    write("evaluator_throughput", {"inputs": len(inputs), "reps": args.reps, "programs": results,
                                   "programs_per_s_all_cores": {"cores": cores, **parallel}})


if __name__ == "__main__":
    main()
