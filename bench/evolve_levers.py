"""Do sampler or grammar levers make the embedded model stop copying what the prompt shows?

After Best Fit, the embedded model's constrained samples pack the training instances in a
handful of ways (First Fit, Best Fit, Worst Fit again; see bench/evolve_small_model.py).
This screens levers that might break that habit, on the same prompts, before any of them
is worth a full 3 x 10-minute comparison:

    base          the grammar and sampling genlab uses (temperature 1.0, top-p 0.95, and
                    llama.cpp's own top-k 40 and min-p 0.05)
    dry           + llama.cpp's DRY sampler, which penalises continuing a sequence already in
                    the context (multiplier 0.8, base 1.75, allowed length 2, whole context)
    presence      + presence penalty 1.0 over the last 256 tokens (the prompt's programs)
    statement     grammar: the body must start with an assignment (gap = ..., score = ...)
    condition     grammar: the body must be an if/elif/else chain of returns
    comment       grammar: the body starts with a one-line comment in words, which the model
                    writes before the code (a plan it then conditions on)
    gap-given     grammar: the body starts with `gap = bins - item` (written for the model, as a
                    skeleton would compute a feature), then the model's own statements
    untruncated   llama.cpp's own truncation off (top-k 40 and min-p 0.05 are its defaults,
                    applied before temperature and never asked for by genlab): top-k 0, min-p 0
    model-only    untruncated and top-p 1: the model's distribution, only the grammar filters

The prompts are the last PROMPTS of a seeded 3-minute constrained run of bin-packing
(made here, under runs/bench-evolve-levers/, reused if present), i.e. prompts built from
the programs search had found by then. Each lever draws SAMPLES_PER_PROMPT samples per
prompt with the same seeds; every sample runs in genlab's sandbox on the training
instances only (no held-out set is touched). Reported: valid samples, distinct behaviours
(per-instance bin counts), the best total bins, and how many samples beat Best Fit.

    .venv/bin/python bench/evolve_levers.py [--prompts 30] [--levers untruncated model-only]

With --levers, only the named levers run; the others keep their last results.

The committed results were measured on bin-packing's first training set, 20 instances of
120 items (Best Fit: 1,043 bins). The spec now evolves on five instances each of 120, 250,
500 and 1000 items (README: "What the search is judged on"), so a rerun measures that
set. Rerun every lever then, not some: --levers merges into results from the other set.

DRY and the presence penalty are llama.cpp server options that genlab's Request does not
carry, so this script calls the embedded llama.cpp server directly.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import time
from pathlib import Path

from common import RESULTS, write

from genlab.models.local import embedded_gguf, load_server
from genlab.search.funsearch.config import EvolveConfig
from genlab.search.funsearch.evaluator import Evaluator
from genlab.search.funsearch.grammar import GrammarConfig, build_grammar, grammar_for
from genlab.search.funsearch.report import open_run, score_program
from genlab.search.funsearch.runner import evolve
from genlab.search.funsearch.spec import load_spec

WORK = Path("runs/bench-evolve-levers")
SAMPLES_PER_PROMPT = 4  # as in genlab evolve
SAMPLERS = {
    "base": {},
    "dry": {"dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 2, "dry_penalty_last_n": 4096},
    "presence": {"presence_penalty": 1.0, "repeat_last_n": 256},
    "statement": {},
    "condition": {},
    "comment": {},
    "gap-given": {},
    "untruncated": {"top_k": 0, "min_p": 0.0},
    "model-only": {"top_k": 0, "min_p": 0.0, "top_p": 1.0},
}


def lever_grammar(spec, lever: str) -> str:
    """The spec's body grammar, or a variant that fixes how the body starts."""
    seed = spec.seed_function
    if lever == "statement":
        return build_grammar(seed.args, seed.return_type, spec.source, GrammarConfig(min_statements=1))
    grammar = grammar_for(spec)
    if lever == "condition":  # the root is the if-chain rule alone
        return grammar.replace("root ::= body-0-0", "root ::= if-0")
    if lever == "comment":
        return grammar.replace("root ::= body-0-0", 'root ::= "    # " [a-zA-Z ,.]{10,70} "\\n" body-0-0')
    if lever == "gap-given":  # body-2-1: the state of the grammar after `gap = ...`
        return grammar.replace("root ::= body-0-0", 'root ::= "    gap = bins - item\\n" body-2-1')
    return grammar


def prompts_of_a_run(count: int) -> list[str]:
    run_dir = WORK / "prompts-seed0-3min"
    if not (run_dir / "done").exists():
        if run_dir.exists():
            shutil.rmtree(run_dir)
        evolve(EvolveConfig(spec="bin-packing", samples=100_000, max_minutes=3, seed=0, constrain=True), run_dir)
        (run_dir / "done").touch()
    store, _ = open_run(run_dir)
    rows = store.query("SELECT text FROM prompts ORDER BY id DESC LIMIT ?", (count,))
    return [row["text"] for row in reversed(rows)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--levers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    args = parser.parse_args()
    spec = load_spec("bin-packing")
    train = spec.inputs()
    evaluator = Evaluator(spec)
    best_fit = -score_program(spec, spec.namespace["BASELINES"]["Best Fit"], {"train": train})["train"]["score"]
    best_fit_bins = round(best_fit * len(train))
    prompts = prompts_of_a_run(args.prompts)
    server = load_server(embedded_gguf())
    header = spec.function_name + "(item, bins):\n"
    last = RESULTS / "evolve_levers.json"
    results = json.loads(last.read_text())["levers"] if last.exists() else {}
    for lever in args.levers:
        options = SAMPLERS[lever]
        lever_gbnf = lever_grammar(spec, lever)
        started, drawn, bins_counts, behaviours, examples = time.monotonic(), 0, collections.Counter(), set(), {}
        for p, prompt in enumerate(prompts):
            for choice in range(SAMPLES_PER_PROMPT):
                out = server.handle_completions({"prompt": prompt, "max_tokens": 512, "temperature": 1.0,
                                                 "top_p": 0.95, "grammar": lever_gbnf, "seed": 1000 * p + choice,
                                                 "cache_prompt": False, **options})
                if "error" in out:
                    raise SystemExit(f"{lever}: llama.cpp refused the request: {out['error']}")
                body = out["choices"][0]["text"]
                drawn += 1
                evaluation = evaluator.evaluate(f"def {header}{body}", train)
                if len(evaluation.scores) == len(train):
                    bins = -round(sum(evaluation.scores.values()))
                    bins_counts[bins] += 1
                    behaviours.add(tuple(sorted(evaluation.scores.items())))
                    examples.setdefault(bins, body)
        best = min(bins_counts) if bins_counts else None
        results[lever] = {"samples": drawn, "valid": sum(bins_counts.values()),
                          "distinct_behaviours": len(behaviours), "best_train_bins": best,
                          "beat_best_fit": sum(n for bins, n in bins_counts.items() if bins < best_fit_bins),
                          "seconds": round(time.monotonic() - started, 1),
                          "most_common_bins": bins_counts.most_common(4), "best_example": examples.get(best)}
        print(lever, json.dumps({k: v for k, v in results[lever].items() if k != "best_example"}), flush=True)
    write("evolve_levers", {"prompts": len(prompts), "samples_per_prompt": SAMPLES_PER_PROMPT,
                            "training_bins": {"Best Fit": best_fit_bins},
                            "levers": {lever: results[lever] for lever in SAMPLERS if lever in results}})


if __name__ == "__main__":
    main()
