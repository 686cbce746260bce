"""Judge meta-evaluation: how well does a judge model agree with human labels?

Pairwise data: JSONL rows ``{"input", "output_1", "output_2", "label": 1|2, "subset"?}``.
Each row is judged in both orders; accuracy is the mean over both orders (a SAME
verdict counts as wrong), as LLMBar reports it. Position consistency is the share of
rows where both orders pick the same output.

Pointwise data: rows ``{"input", "output", "score": human score}`` and a rubric metric;
the judge's scores are correlated with the human ones (Spearman, Kendall).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from genlab.errors import ConfigError
from genlab.io import read_jsonl
from genlab.evaluate.autorater import PairwiseMetric, PointwiseMetric, compare, rate
from genlab.models import Model


def read_dataset(path: Path) -> tuple[str, list[dict]]:
    """Return ("pairwise" | "pointwise", rows), checking every row."""
    numbered = list(read_jsonl(path, "judge dataset"))
    if not numbered:
        raise ConfigError(f"{path} has no rows")
    kind = "pairwise" if "output_1" in numbered[0][1] else "pointwise"
    needed = ("input", "output_1", "output_2", "label") if kind == "pairwise" else ("input", "output", "score")
    for number, row in numbered:
        missing = [k for k in needed if k not in row]
        if missing:
            raise ConfigError(f"{path}:{number}: missing {missing[0]!r} (a {kind} row has {', '.join(needed)})")
        if kind == "pairwise":
            if row["label"] not in (1, 2, "1", "2"):   # a label written as text ("1") is the same label
                raise ConfigError(f"{path}:{number}: label must be 1 or 2 (the better output), got {row['label']!r}")
            row["label"] = int(row["label"])
        elif isinstance(row["score"], bool) or not isinstance(row["score"], (int, float)):
            raise ConfigError(f"{path}:{number}: score must be a number (the human's rating), got {row['score']!r}")
    return kind, [row for _, row in numbered]


def _judge_all(judge_row: Callable[[dict], Any], rows: list[dict], concurrency: int,
               progress: Callable[[int, int], None] | None) -> list:
    """Judge every row concurrently, in order, reporting progress as rows finish."""
    results = []
    with ThreadPoolExecutor(concurrency) as pool:
        for i, result in enumerate(pool.map(judge_row, rows), start=1):
            results.append(result)
            if progress:
                progress(i, len(rows))
    return results


def evaluate_pairwise(judge: Model, metric: PairwiseMetric, rows: list[dict], concurrency: int = 2,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    def one(row: dict) -> dict:
        verdict = compare(judge, metric, row["output_1"], row["output_2"], {"prompt": row["input"]})
        # order 1: A = output_1; order 2: A = output_2.
        pick1 = {"A": 1, "B": 2, "SAME": 0}[verdict.order1]
        pick2 = {"A": 2, "B": 1, "SAME": 0}[verdict.order2]
        final = {"candidate": 1, "baseline": 2, "tie": 0}[verdict.winner]
        return {"label": row["label"], "subset": row.get("subset", "all"), "pick1": pick1, "pick2": pick2,
                "final": final, "consistent": pick1 == pick2 and pick1 != 0}

    results = _judge_all(one, rows, concurrency, progress)

    def accuracy(items: list[dict]) -> float:
        return sum((r["pick1"] == r["label"]) + (r["pick2"] == r["label"]) for r in items) / (2 * len(items))

    subsets = defaultdict(list)
    for r in results:
        subsets[r["subset"]].append(r)
    picks = [p for r in results for p in (r["pick1"], r["pick2"])]
    confusion = Counter((r["label"], r["final"]) for r in results)
    return {
        "kind": "pairwise", "rows": len(results), "accuracy": accuracy(results),
        "position_consistency": sum(r["consistent"] for r in results) / len(results),
        "tie_rate": picks.count(0) / len(picks),
        "first_position_rate": sum(1 for r in results for p, a in ((r["pick1"], 1), (r["pick2"], 2)) if p == a)
        / len(picks),
        "subsets": {name: {"rows": len(items), "accuracy": accuracy(items)} for name, items in sorted(subsets.items())},
        "confusion": {f"human {label} → judge {'tie' if final == 0 else final}": n
                      for (label, final), n in sorted(confusion.items())},
    }


def evaluate_pointwise(judge: Model, metric: PointwiseMetric, rows: list[dict], concurrency: int = 2,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    from scipy.stats import kendalltau, spearmanr

    def one(row: dict) -> int:
        return rate(judge, metric, row["output"], {"prompt": row["input"]}).score

    scores = _judge_all(one, rows, concurrency, progress)
    human = [float(r["score"]) for r in rows]
    constant = len(set(scores)) < 2 or len(set(human)) < 2
    return {"kind": "pointwise", "rows": len(rows), "metric": metric.name,
            "spearman": None if constant else float(spearmanr(human, scores).statistic),
            "kendall": None if constant else float(kendalltau(human, scores).statistic),
            "judge_scores": dict(sorted(Counter(scores).items())),
            "note": "a judge or human score that never varies has no correlation" if constant else ""}
