"""Enum mode vs free text + parsing, on 200 inputs of the shipped topics task.

Same model, prompt and few-shot examples (none); only the output form changes: enum mode
as genlab decodes it (on llama.cpp each label scored whole), enum mode as one grammar
over the labels decoded token by token (llama.cpp only; genlab's enum mode before), and
free text parsed. Prints validity (the answer is one of the labels) and accuracy.

    .venv/bin/python bench/classify_enum.py [--model local] [--limit 200]
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

from common import enum_per_token, write

from genlab.models import get_model
from genlab.search.classify import Classifier
from genlab.search.tasks import load_task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local")
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    task = load_task("topics")
    items = task.items[: args.limit]
    model = get_model(args.model, source="bench")
    results = {}
    variants = [("enum", "enum", nullcontext())]
    if args.model == "local" or args.model.startswith("local:"):
        variants.append(("enum_per_token", "enum", enum_per_token()))
    variants.append(("free", "free", nullcontext()))
    for name, method, decoding in variants:
        classifier = Classifier(model, task.labels, method=method)
        start = time.perf_counter()
        with decoding:
            answers = list(classifier.classify_many([i["text"] for i in items], concurrency=2))
        seconds = time.perf_counter() - start
        valid = sum(a.label in task.labels for a in answers)
        correct = sum(a.label == i["label"] for a, i in zip(answers, items))
        tokens = sum(a.usage.total_tokens for a in answers)
        results[name] = {"valid": valid, "correct": correct, "items": len(items), "seconds": seconds,
                           "tokens": tokens}
        print(f"{name:14s}: valid {valid}/{len(items)} ({100 * valid / len(items):.1f} %) · accuracy "
              f"{100 * correct / len(items):.1f} % · {tokens / len(items):.0f} tokens/item · {seconds:.1f} s")
    write("classify_enum", {"model": args.model, "task": "topics", "results": results})


if __name__ == "__main__":
    main()
