"""Verifiers that run a model, as best-of-k pickers on one-step sums: a reward model trained
on the development split's own chains, and the embedded model as an autorater.

    .venv/bin/python bench/ttc_verifiers.py

1. Sample 16 chains for each of arith-1's 100 development items (the ttc bench's settings).
2. Make pairs from them: on an item with right and wrong chains, a right chain (chosen)
   against a wrong one (rejected), up to 4 an item, the prompt being the question a verifier
   is shown. Every fifth item's pairs are kept apart to read the reward model's pairwise
   accuracy. Train it with `genlab tune reward`'s settings fixed before any run (one epoch,
   batch 8, learning rate 2e-5, 256 tokens): the step of Cobbe et al.'s verifiers, with the
   gold answer used only to label the development chains.
3. On the 400 held-out items, sample 16 chains (the records are the ttc bench's, so
   `bench/ttc_tasks.py` resumes from them), score all 16 with the reward model, and compare
   best-of-k by it with one sample, self-consistency, the model's likelihood, the checker and
   pass@k, on the same chains.
4. The autorater (the embedded model rating each chain on question_answering_quality, with
   no reference) costs 2-4 s a chain, so it scores the first 4 chains of the first 100
   held-out items, and every method is compared again on those items up to k = 4.

Writes bench/results/ttc_verifiers.json and ttc_verifiers.png (about 75 minutes on 2 cores). The
chains, the pairs, the reward model and every score are kept under runs/bench-ttc/, so a run
started again resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import sys
import time
from itertools import cycle
from pathlib import Path

from common import RESULTS, write

from genlab.io import write_jsonl
from genlab.models import get_model
from genlab.search.tasks import load_task
from genlab.search.ttc import autorater
from genlab.search.ttc_bench import BenchConfig, ItemRecord, chain_stats, curves, plot, run_task, score_chains
from genlab.train.reward import reward_verifier, tune_reward
from genlab.train.trainer import TrainOptions

TASK = "arith-1"
RECORDS = Path("runs/bench-ttc")
WORK = RECORDS / "verifiers"  # the pairs, the reward model and its scores: a run started again reuses them
AUTORATER_ITEMS, AUTORATER_CHAINS = 100, 4
PAIRS_PER_ITEM = 4
RM = {"batch_size": 8, "learning_rate": 2e-5, "max_length": 256}


def pairs_of(records: list[ItemRecord]) -> list[dict]:
    """Right chains against wrong ones of the same item (a chain with no answer is wrong)."""
    pairs = []
    for r in records:
        right = [text for text, answer in zip(r.chains, r.answers) if answer == r.gold]
        wrong = [text for text, answer in zip(r.chains, r.answers) if answer != r.gold]
        if right and wrong:
            pairs += [{"prompt": r.question, "chosen": chosen, "rejected": rejected}
                      for chosen, rejected in zip(cycle(right), wrong[:PAIRS_PER_ITEM])]
    return pairs


def timed_scores(records, verifier, chains, path, settings, name) -> tuple[list, float | None]:
    """The verifier's scores, and its seconds per chain over the items this run scored (None
    when every item was scored before: a resumed run has nothing to time)."""
    before = len(path.read_text().splitlines()) if path.exists() else 0
    start = time.perf_counter()
    scores = score_chains(records, verifier, chains=chains, path=path, settings=settings,
                          progress=lambda done, total: print(f"\r{name}: {done}/{total}", end="", flush=True))
    seconds = time.perf_counter() - start
    print(f"  ({seconds:.0f} s)")
    scored = len(path.read_text().splitlines()) - before
    return scores, seconds / (scored * len(scores[0])) if scored else None


def trained_reward_model(dev: list[ItemRecord]) -> dict:
    """Train the reward model on the dev chains, or read the summary of the one trained before."""
    summary = WORK / "rm" / "genlab-train.json"
    if not summary.is_file():
        train_pairs = pairs_of([r for i, r in enumerate(dev) if i % 5])
        check_pairs = pairs_of([r for i, r in enumerate(dev) if i % 5 == 0])
        write_jsonl(train_pairs, WORK / "train.jsonl")
        write_jsonl(check_pairs, WORK / "check.jsonl")
        steps = math.ceil(len(train_pairs) / RM["batch_size"])
        print(f"reward model: {len(train_pairs)} pairs ({steps} steps), {len(check_pairs)} to check")
        tune_reward(WORK / "train.jsonl", TrainOptions(output=WORK / "rm", max_steps=steps, save_steps=1000, **RM),
                    progress=print, held_out_pairs=WORK / "check.jsonl")
    return json.loads(summary.read_text())


def ordered(records: list[ItemRecord], scores: list[list[float | None]]) -> dict:
    """Of the pairs (a right chain, a wrong chain) of one item among the scored chains, the share
    the verifier scores right above wrong, and the share it ties: what a picker has to go on."""
    above = ties = pairs = 0
    for record, item_scores in zip(records, scores):
        marks = [(answer == record.gold, score if score is not None else float("-inf"))
                 for answer, score in zip(record.answers, item_scores)]
        for right in (s for ok, s in marks if ok):
            for wrong in (s for ok, s in marks if not ok):
                pairs += 1
                above += right > wrong
                ties += right == wrong
    return {"pairs": pairs, "right_above": above / pairs if pairs else None, "tied": ties / pairs if pairs else None}


def timings(measured: dict[str, float | None]) -> dict[str, float]:
    """Seconds per chain of each verifier: this run's, or the last run's where this one resumed."""
    path = RESULTS / "ttc_verifiers.json"
    previous = json.loads(path.read_text()).get("seconds_per_chain", {}) if path.exists() else {}
    return {name: seconds if seconds is not None else previous.get(name) for name, seconds in measured.items()}


def main() -> None:
    model = get_model("local", source="bench")
    config = BenchConfig()
    dev = run_task(model, load_task(TASK, "dev"), config, records=RECORDS / f"local-{TASK}-dev.jsonl",
                   progress=lambda done, total: print(f"\rdev chains: {done}/{total}", end="", flush=True))
    print()
    trained = trained_reward_model(dev)
    accuracy = trained["pair_accuracy"]

    test = run_task(model, load_task(TASK, "test"), config, records=RECORDS / f"local-{TASK}.jsonl",
                    progress=lambda done, total: print(f"\rheld-out chains: {done}/{total}", end="", flush=True))
    print()
    rm_scores, rm_seconds = timed_scores(test, reward_verifier(WORK / "rm"), None, WORK / "rm-scores.jsonl",
                                         {"reward_model": "dev chains"}, "reward model")
    judged = test[:AUTORATER_ITEMS]
    judge_scores, judge_seconds = timed_scores(judged, autorater(model), AUTORATER_CHAINS,
                                               RECORDS / f"local-{TASK}.autorater.jsonl", {"autorater": "local"},
                                               "autorater")
    rows = curves(test, config.ks, {"reward model": rm_scores})
    judged_ks = tuple(k for k in config.ks if k <= AUTORATER_CHAINS)
    judged_rows = curves(judged, judged_ks, {"reward model": [s[:AUTORATER_CHAINS] for s in rm_scores[:AUTORATER_ITEMS]],
                                             "autorater": judge_scores})
    for title, table in ((f"{len(test)} held-out items", rows), (f"first {len(judged)}, k <= 4", judged_rows)):
        print(title)
        for r in table:
            print(f"  {r['method']:24s} {r['k'] or '':>3} {100 * r['accuracy']:5.1f} % "
                  f"({100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f})")
    plot({f"{TASK} (held out)": rows, f"{TASK} (first held-out items, k <= 4)": judged_rows},
         str(RESULTS / "ttc_verifiers.png"), "local")
    write("ttc_verifiers", {
        "model": "local", "task": TASK, "held_out_items": len(test), "autorater_items": len(judged), "config": {
            "K": max(config.ks), "temperature": config.temperature, "max_tokens": config.max_tokens,
            "autorater_chains": AUTORATER_CHAINS, "autorater_metric": "question_answering_quality"},
        "reward_model": {
            "dev_items": len(dev), "train_pairs": trained["rows"], "check_pairs": accuracy["after"]["n"],
            "steps": trained["steps"], **RM, "training_seconds": trained["seconds"],
            "check_accuracy_before": accuracy["before"]["rate"], "check_accuracy_before_ci95": accuracy["before"]["ci95"],
            "check_accuracy_after": accuracy["after"]["rate"], "check_accuracy_after_ci95": accuracy["after"]["ci95"],
            "loss_first": trained["loss_first"], "loss_last": trained["loss_last"]},
        "right_above_wrong": {  # within an item, on held-out chains
            "likelihood": ordered(test, [r.likelihood for r in test]),
            "checker": ordered(test, [r.checker for r in test]),
            "reward model": ordered(test, rm_scores),
            "autorater (first 4 chains, first 100 items)": ordered(judged, judge_scores)},
        "seconds_per_chain": timings({"reward model": rm_seconds, "autorater": judge_seconds}),
        "rows": rows, "autorater_rows": judged_rows, "chains": chain_stats(test)})


if __name__ == "__main__":
    sys.exit(main())
