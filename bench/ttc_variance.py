"""How temperature, top-p and top-k change the embedded model's answers (genlab ttc variance).

For the arith-1 task's one prompt, 30 held-out items x 8 samples at every setting of a
4 x 2 x 2 grid: distinct answers per item, items whose samples disagree, the accuracy of
one sample, pass@8 and self-consistency@8.

    .venv/bin/python bench/ttc_variance.py [--model local] [--task arith-1] [--limit 30]

Writes bench/results/ttc_variance.json and ttc_variance.png.
"""

from __future__ import annotations

import argparse
import time

from common import RESULTS, write

from genlab.models import get_model
from genlab.search.tasks import load_task
from genlab.search.ttc_bench import Grid, plot_variance, variance

GRID = Grid(temperatures=(0.3, 0.7, 1.0, 1.5), top_ps=(0.5, 1.0), top_ks=(0, 10), samples=8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local")
    parser.add_argument("--task", default="arith-1")
    parser.add_argument("--limit", type=int, default=30)
    args = parser.parse_args()
    model = get_model(args.model, source="bench")
    task = load_task(args.task, "test")
    start = time.perf_counter()
    rows = variance(model, task, GRID, limit=args.limit,
                    progress=lambda done, total: print(f"\rgrid {done}/{total}", end="", flush=True))
    print(f"  ({time.perf_counter() - start:.0f} s)")
    for r in rows:
        print(f"  T {r['temperature']:<4} top-p {r['top_p']:<4} top-k {r['top_k'] or '-':<3} "
              f"distinct {r['distinct_answers']:.2f}  one sample {100 * r['sample_accuracy']:5.1f} %  "
              f"pass@{r['samples']} {100 * r['pass_at_samples']:5.1f} %  SC {100 * r['self_consistency']:5.1f} %")
    plot_variance(rows, str(RESULTS / "ttc_variance.png"), f"{args.task} · {args.model}")
    write("ttc_variance", {"model": args.model, "task": args.task, "split": "test", "grid": rows})


if __name__ == "__main__":
    main()
