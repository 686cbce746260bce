"""Accuracy against compute on the shipped tasks, held-out items, embedded model.

One prompt per task for every method; direct, chain of thought, self-consistency@k,
best-of-k (the model's likelihood; for arithmetic, a checker that never reads the gold
answer) and pass@k for k = 1, 2, 4, 8, 16, each with its 95 % Wilson interval.

    .venv/bin/python bench/ttc_tasks.py [--model local] [--tasks arith-1 arith-2 arith-3 topics]

Every task runs on all its held-out items (400 for each arith-N, 180 for topics; at 400 a
10-point difference is outside the intervals). On two cores that takes hours, so records
are kept in runs/bench-ttc/, a restarted run resumes from them, and --tasks runs some
tasks again while the JSON keeps the others' figures (when model and settings match).
Writes bench/results/ttc_tasks.json and ttc_tasks.png. With --no-chain-grammar --tasks topics,
the topic chains end in free text (ttc_tasks-no-chain-grammar.json), to show what the
chain grammar changes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import RESULTS, write

from genlab.models import get_model
from genlab.search.tasks import load_task
from genlab.search.ttc_bench import BenchConfig, chain_stats, curves, plot, run_task

TASKS = ("arith-1", "arith-2", "arith-3", "topics")
RECORDS = Path("runs/bench-ttc")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--no-chain-grammar", action="store_true",
                        help="topic chains end in free text (the comparison in the README); "
                             "writes ttc_tasks-no-chain-grammar.json")
    args = parser.parse_args()
    grammar = not args.no_chain_grammar
    name_suffix = "" if grammar else "-no-chain-grammar"
    model = get_model(args.model, source="bench")
    rows, stats, sizes = {}, {}, {}
    for name in args.tasks:
        config = BenchConfig(chain_grammar=grammar)
        task = load_task(name, "test")
        start = time.perf_counter()
        path = RECORDS / f"{args.model.replace(':', '_')}-{name}{name_suffix}.jsonl"
        records = run_task(model, task, config, records=path,
                           progress=lambda done, total: print(f"\r{name}: {done}/{total}", end="", flush=True))
        print(f"  ({time.perf_counter() - start:.0f} s)")
        rows[name], stats[name], sizes[name] = curves(records, config.ks), chain_stats(records), len(records)
        for r in rows[name]:
            print(f"  {r['method']:22s} {r['k'] or '':>3} {100 * r['accuracy']:5.1f} % "
                  f"({100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f})  tokens/item {r['tokens_per_item']:6.0f}")
    config = {"ks": list(BenchConfig.ks), "temperature": BenchConfig.temperature,
              "max_tokens": BenchConfig.max_tokens, "chain_grammar": grammar}
    result = {"model": args.model, "split": "test", "items": sizes, "config": config, "tasks": rows, "chains": stats}
    result = keep_other_tasks(result, RESULTS / f"ttc_tasks{name_suffix}.json")
    plot(result["tasks"], str(RESULTS / f"ttc_tasks{name_suffix}.png"), args.model)
    write(f"ttc_tasks{name_suffix}", result)


def keep_other_tasks(result: dict, path: Path) -> dict:
    """Add the tasks this run did not measure from the committed JSON, if it has the same model and settings."""
    if not path.exists():
        return result
    previous = json.loads(path.read_text())
    if any(previous.get(key) != result[key] for key in ("model", "split", "config")):
        return result
    merged = dict(result)
    for key in ("items", "tasks", "chains"):
        merged[key] = {name: (result[key] if name in result[key] else previous[key])[name]
                       for name in TASKS if name in result[key] or name in previous.get(key, {})}
    return merged


if __name__ == "__main__":
    main()
