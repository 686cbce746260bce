"""What judging in both orders changes: an autorater's pairwise verdicts with one order
against both (genlab's rule: an order-dependent verdict is a tie), and its pointwise
scores, on pairs whose better answer is known by construction.

Each held-out answerable question of examples/notebook/pyref-qa.jsonl (70) is paired
with its own gold answer and the gold answer of the next held-out question that is about
another page: a fluent, true sentence that answers a different question. The right
answer is output 1 for even rows and output 2 for odd ones, so one order shows it first
half the time. Only the calibrated section chooses anything, on the dev half.

    one order    the verdict with output 1 as A (what a judge asked once reports)
    both orders  genlab's `compare`: a win only where both orders agree, else a tie
    pointwise    question_answering_quality (1-5) of each answer, alone
    calibrated   both orders read as probabilities, not verdicts (the balanced position
                 calibration of Wang et al. 2023, "Large Language Models are not Fair
                 Evaluators"): the judge is asked for one letter, each of A and B scored
                 whole in enum mode, and the output whose log-odds of being chosen,
                 summed over the two orders, is higher wins. How the log-odds are read
                 (A against B, or A's alone) is chosen on the dev half's 70 pairs, built
                 the same way; the held-out pairs report the choice.

Writes bench/results/eval_judge.json (eval_judge-SPEC.json for ``--judge SPEC``). About
10 minutes on 2 cores with the embedded model; sections named on the command line run, the
others keep their last results.
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

from bench.common import rate, write  # noqa: E402

QA = ROOT / "examples" / "notebook" / "pyref-qa.jsonl"
PAIRWISE_METRIC = "pairwise_question_answering_quality"
POINTWISE_METRIC = "question_answering_quality"
SECTIONS = ("pairwise", "pointwise", "calibrated")


def pairs(half: str = "heldout") -> list[dict]:
    rows = [json.loads(line) for line in QA.read_text().splitlines()]
    part = [r for r in rows if r["split"] == half and r.get("gold")]
    made = []
    for i, row in enumerate(part):
        other = next(o for o in part[i + 1:] + part[:i] if o["source"] != row["source"])
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


CHOOSE_PROMPT = "\n\nWhich response is better, A or B? Answer with one letter."
READINGS = ("a_against_b", "a_alone")   # on a tie on dev, the first


def calibrated_scores(judge, rows: list[dict]) -> list[dict]:
    """Each pair's log-probabilities of the answers "A" and "B", in both orders (order 1:
    A = output 1), each label scored whole in enum mode."""
    from genlab.evaluate.autorater import pairwise_prompt
    from genlab.evaluate.builtin import pairwise_metric

    metric = pairwise_metric(PAIRWISE_METRIC)

    def logprob(prompt: str, label: str) -> float:
        choice = judge.chat(prompt, temperature=0, logprobs=True, cache=True,
                            response_format={"type": "enum", "enum": [label]}).choices[0]
        return sum(token["logprob"] for token in choice.logprobs)

    scored = []
    for row in rows:
        orders = [(row["output_1"], row["output_2"]), (row["output_2"], row["output_1"])]
        prompts = [pairwise_prompt(metric, a, b, {"prompt": row["question"]}) + CHOOSE_PROMPT for a, b in orders]
        scored.append({"label": row["label"], "orders": [{"A": logprob(p, "A"), "B": logprob(p, "B")} for p in prompts]})
    return scored


def calibrated_verdicts(scored: list[dict], reading: str) -> dict:
    """How often the calibrated verdict is right: the log-odds for output 1 in order 1, less
    those for output 2 in order 2 (``a_alone``: log P(A) only)."""
    right = wrong = 0
    for row in scored:
        first, second = row["orders"]
        if reading == "a_alone":
            margin = first["A"] - second["A"]
        else:
            margin = (first["A"] - first["B"]) - (second["A"] - second["B"])
        pick = 1 if margin > 0 else 2 if margin < 0 else 0
        right += pick == row["label"]
        wrong += pick not in (0, row["label"])
    n = len(scored)
    return {"right": rate(right, n), "wrong": rate(wrong, n), "tie": n - right - wrong}


def calibrated(judge) -> dict:
    dev = calibrated_scores(judge, pairs("dev"))
    on_dev = {reading: calibrated_verdicts(dev, reading) for reading in READINGS}
    chosen = max(READINGS, key=lambda r: (on_dev[r]["right"]["passed"], -READINGS.index(r)))
    held_out = calibrated_scores(judge, pairs("heldout"))
    return {"dev": on_dev, "chosen_on_dev": chosen, "heldout": calibrated_verdicts(held_out, chosen),
            "heldout_scores": held_out}


def main(judge_spec: str, sections: tuple[str, ...]) -> None:
    os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-bench-"))
    from genlab.models import get_model

    judge = get_model(judge_spec, source="bench")
    rows = pairs()
    name = "eval_judge" if judge_spec == "local" else "eval_judge-" + re.sub(r"[^A-Za-z0-9.-]+", "-", judge_spec)
    previous = ROOT / "bench" / "results" / f"{name}.json"
    data: dict = json.loads(previous.read_text()) if previous.exists() and sections != SECTIONS else {}
    data.pop("machine", None)
    data |= {"judge": judge_spec, "pairs": len(rows), "pairwise_metric": PAIRWISE_METRIC,
             "pointwise_metric": POINTWISE_METRIC}
    if "pairwise" in sections:
        started = time.perf_counter()
        data["pairwise"] = pairwise(judge, rows)
        data["pairwise_seconds"] = time.perf_counter() - started
        one, both = data["pairwise"]["one_order"], data["pairwise"]["both_orders"]
        print(f"one order: right {one['right']['passed']}/{len(rows)}, chose the first shown "
              f"{one['chose_the_first_shown']['passed']}/{len(rows)} (right when shown first "
              f"{one['right_when_shown_first']['passed']}, second {one['right_when_shown_second']['passed']}); "
              f"both orders: right {both['right']['passed']}, wrong {both['wrong']['passed']}, tie {both['tie']['passed']}")
    if "pointwise" in sections:
        started = time.perf_counter()
        data["pointwise"] = pointwise(judge, rows)
        data["pointwise_seconds"] = time.perf_counter() - started
        p = data["pointwise"]
        print(f"pointwise: right scored higher {p['right_scored_higher']['passed']}/{len(rows)}, equal "
              f"{p['equal']['passed']}, lower {p['right_scored_lower']['passed']} (sign test p = {p['sign_test_p']}); "
              f"means {p['mean_score']}")
    if "calibrated" in sections:
        started = time.perf_counter()
        data["calibrated"] = c = calibrated(judge)
        data["calibrated_seconds"] = time.perf_counter() - started
        print("calibrated, dev: " + "; ".join(f"{r} right {v['right']['passed']} wrong {v['wrong']['passed']}"
                                               for r, v in c["dev"].items())
              + f"; chosen {c['chosen_on_dev']}; held out: right {c['heldout']['right']['passed']}, "
              f"wrong {c['heldout']['wrong']['passed']}, tie {c['heldout']['tie']}")
    write(name, data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="An autorater in one order and in both (see the module docstring).")
    parser.add_argument("sections", nargs="*", help=f"sections to run (all by default): {', '.join(SECTIONS)}")
    parser.add_argument("--judge", default="local", help="the judge's model spec, e.g. gemini:gemini-2.5-flash")
    args = parser.parse_args()
    if unknown := set(args.sections) - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; name some of {', '.join(SECTIONS)}")
    main(args.judge, tuple(args.sections) or SECTIONS)
