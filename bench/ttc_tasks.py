"""Accuracy against compute on both shipped tasks (direct, CoT, self-consistency@k, best-of-N).

    .venv/bin/python bench/ttc_tasks.py [--model local] [--limit 30]

Writes bench/results/ttc_tasks.json and ttc_tasks.png.
"""

from __future__ import annotations

import argparse

from common import RESULTS, write

from genlab.models import get_model
from genlab.search.tasks import load_task
from genlab.search.ttc_bench import BenchConfig, plot, run_bench


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local")
    parser.add_argument("--limit", type=int, default=30)
    args = parser.parse_args()
    model = get_model(args.model, source="bench")
    config = BenchConfig(limit=args.limit)
    everything = {}
    for name in ("arithmetic", "topics"):
        results = run_bench(model, load_task(name), config)
        everything[name] = results
        print(f"{name} ({results[0].items} items, {args.model})")
        for r in results:
            print(f"  {r.name:30s} accuracy {100 * r.accuracy:5.1f} %  answered {r.valid:3d}/{r.items}  "
                  f"tokens/item {r.tokens_per_item:7.0f}")
    RESULTS.mkdir(exist_ok=True)
    plot(everything, str(RESULTS / "ttc_tasks.png"), args.model)
    write("ttc_tasks", {"model": args.model, "limit": args.limit,
                        "tasks": {t: [{**vars(r), "accuracy": r.accuracy, "tokens_per_item": r.tokens_per_item}
                                      for r in rs] for t, rs in everything.items()}})


if __name__ == "__main__":
    main()
