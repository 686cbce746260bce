"""What judging in both orders changes: an autorater's pairwise verdicts with one order
against both (genlab's rule: an order-dependent verdict is a tie), and its pointwise
scores, on pairs whose better answer is known by construction.

Each held-out answerable question of examples/notebook/pyref-qa.jsonl (70) is paired
with its own gold answer and the gold answer of the next held-out question that is about
another page: a fluent, true sentence that answers a different question. The right
answer is output 1 for even rows and output 2 for odd ones, so one order shows it first
half the time. Nothing is chosen here; the dev half is not used.

    one order    the verdict with output 1 as A (what a judge asked once reports)
    both orders  genlab's `compare`: a win only where both orders agree, else a tie
    pointwise    question_answering_quality (1-5) of each answer, alone

Writes bench/results/eval_judge.json (eval_judge-SPEC.json for ``--judge SPEC``). About
8 minutes on 2 cores with the embedded model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write  # noqa: E402

QA = ROOT / "examples" / "notebook" / "pyref-qa.jsonl"
PAIRWISE_METRIC = "pairwise_question_answering_quality"
POINTWISE_METRIC = "question_answering_quality"


def rate(passed: int, n: int) -> dict:
    from genlab.train.effect import Rate

    r = Rate.of(int(passed), n)
    return {"passed": r.passed, "n": r.n, "rate": r.rate, "ci95": list(r.ci95)}


def pairs() -> list[dict]:
    rows = [json.loads(line) for line in QA.read_text().splitlines()]
    held_out = [r for r in rows if r["split"] == "heldout" and r.get("gold")]
    made = []
    for i, row in enumerate(held_out):
        other = next(o for o in held_out[i + 1:] + held_out[:i] if o["source"] != row["source"])
        right_first = i % 2 == 0
        made.append({"question": row["question"], "right": row["gold"], "wrong": other["gold"],
                     "output_1": row["gold"] if right_first else other["gold"],
                     "output_2": other["gold"] if right_first else row["gold"], "label": 1 if right_first else 2})
    return made


def pairwise(judge, rows: list[dict]) -> dict:
    from genlab.evaluate.autorater import compare
    from genlab.evaluate.builtin import pairwise_metric

    metric = pairwise_metric(PAIRWISE_METRIC)
    one = {"right": 0, "wrong": 0, "same": 0, "first": 0, "right_when_shown_first": 0, "right_when_shown_second": 0}
    both = {"right": 0, "wrong": 0, "tie": 0}
    for row in rows:
        verdict = compare(judge, metric, row["output_1"], row["output_2"], {"prompt": row["question"]})
        pick = {"A": 1, "B": 2, "SAME": 0}[verdict.order1]
        one["right" if pick == row["label"] else "same" if pick == 0 else "wrong"] += 1
        one["first"] += pick == 1
        one["right_when_shown_first" if row["label"] == 1 else "right_when_shown_second"] += pick == row["label"]
        final = {"candidate": 1, "baseline": 2, "tie": 0}[verdict.winner]
        both["right" if final == row["label"] else "tie" if final == 0 else "wrong"] += 1
    n, shown_first = len(rows), sum(r["label"] == 1 for r in rows)
    return {
        "one_order": {"right": rate(one["right"], n), "wrong": rate(one["wrong"], n), "same": one["same"],
                      "chose_the_first_shown": rate(one["first"], n),
                      "right_when_shown_first": rate(one["right_when_shown_first"], shown_first),
                      "right_when_shown_second": rate(one["right_when_shown_second"], n - shown_first)},
        "both_orders": {"right": rate(both["right"], n), "wrong": rate(both["wrong"], n), "tie": rate(both["tie"], n)},
    }


def pointwise(judge, rows: list[dict]) -> dict:
    from genlab.evaluate.autorater import rate as rate_answer
    from genlab.evaluate.builtin import pointwise_metric

    metric = pointwise_metric(POINTWISE_METRIC)
    higher = equal = 0
    scores = {"right": [], "wrong": []}
    for row in rows:
        right, wrong = (rate_answer(judge, metric, row[k], {"prompt": row["question"]}).score for k in ("right", "wrong"))
        scores["right"].append(right)
        scores["wrong"].append(wrong)
        higher += right > wrong
        equal += right == wrong
    from scipy.stats import binomtest

    n, lower = len(rows), len(rows) - higher - equal
    return {"right_scored_higher": rate(higher, n), "equal": rate(equal, n), "right_scored_lower": rate(lower, n),
            # Exact sign test over the pairs the judge told apart: is "right higher" more than a coin?
            "sign_test_p": binomtest(higher, higher + lower).pvalue if higher + lower else None,
            "mean_score": {k: sum(v) / n for k, v in scores.items()}, "scores": scores}


def main(judge_spec: str) -> None:
    os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-bench-"))
    from genlab.models import get_model

    judge = get_model(judge_spec, source="bench")
    rows = pairs()
    data: dict = {"judge": judge_spec, "pairs": len(rows), "pairwise_metric": PAIRWISE_METRIC,
                  "pointwise_metric": POINTWISE_METRIC}
    started = time.perf_counter()
    data["pairwise"] = pairwise(judge, rows)
    data["pairwise_seconds"] = time.perf_counter() - started
    one, both = data["pairwise"]["one_order"], data["pairwise"]["both_orders"]
    print(f"one order: right {one['right']['passed']}/{len(rows)}, chose the first shown "
          f"{one['chose_the_first_shown']['passed']}/{len(rows)} (right when shown first "
          f"{one['right_when_shown_first']['passed']}, second {one['right_when_shown_second']['passed']}); "
          f"both orders: right {both['right']['passed']}, wrong {both['wrong']['passed']}, tie {both['tie']['passed']}")
    started = time.perf_counter()
    data["pointwise"] = pointwise(judge, rows)
    data["pointwise_seconds"] = time.perf_counter() - started
    p = data["pointwise"]
    print(f"pointwise: right scored higher {p['right_scored_higher']['passed']}/{len(rows)}, equal "
          f"{p['equal']['passed']}, lower {p['right_scored_lower']['passed']} (sign test p = {p['sign_test_p']}); "
          f"means {p['mean_score']}")
    name = "eval_judge" if judge_spec == "local" else "eval_judge-" + re.sub(r"[^A-Za-z0-9.-]+", "-", judge_spec)
    write(name, data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="An autorater in one order and in both (see the module docstring).")
    parser.add_argument("--judge", default="local", help="the judge's model spec, e.g. gemini:gemini-2.5-flash")
    main(parser.parse_args().judge)
