"""Write the data of genlab's tuning bench: a narrow behaviour a program can check.

The wanted reply states the answer as "ANSWER: <value>" and nothing else (the suite
format.yaml checks it with a regex, and whether the right value is in the reply). The
questions (capitals, sums, letter counts) are split once, by a fixed seed, before any
tuning: 100 held out for the figures (format_eval.jsonl), 30 for choosing settings
(format_dev.jsonl), the rest for training.

The unwanted reply in the pairs and the thumbs-down rows is the embedded model's own
greedy reply to the same question. Preference tuning learns from the difference between
the two replies; with a rejected reply the model would never write (canned chatty text,
as in genlab's first version of this file) DPO drove its loss to zero by pushing that
text down, and what the model did write was left as it was. Run once (the outputs are
committed):

    .venv/bin/python examples/tune/generate.py           # everything below
    .venv/bin/python examples/tune/generate.py pairs     # only the right/wrong pairs (no model calls)

Right/wrong pairs (right_wrong_{train,dev,eval}.jsonl), for a reward model that length and
format cannot help: both replies are "ANSWER: <value>", the rejected value a near miss of
the same kind and about the same length (a sum off by 1-9, a letter count off by 1-2, another
country's capital of similar length). Three per training question, one per dev and held-out
question; the same split as above. The training prompts also go to right_wrong_prompts.jsonl
with their answer, for GRPO against a checker.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

CAPITALS = {"France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Japan": "Tokyo",
            "Egypt": "Cairo", "Canada": "Ottawa", "Peru": "Lima", "Kenya": "Nairobi", "Norway": "Oslo",
            "Greece": "Athens", "Poland": "Warsaw", "Chile": "Santiago", "Cuba": "Havana", "Ireland": "Dublin",
            "Austria": "Vienna", "Portugal": "Lisbon", "Sweden": "Stockholm", "Finland": "Helsinki",
            "Hungary": "Budapest", "Thailand": "Bangkok", "Vietnam": "Hanoi", "Turkey": "Ankara",
            "Argentina": "Buenos Aires", "Mexico": "Mexico City", "India": "New Delhi", "China": "Beijing",
            "Russia": "Moscow", "Belgium": "Brussels", "Denmark": "Copenhagen", "Iceland": "Reykjavik",
            "Colombia": "Bogota", "Venezuela": "Caracas", "Ukraine": "Kyiv", "Romania": "Bucharest",
            "Bulgaria": "Sofia", "Serbia": "Belgrade", "Croatia": "Zagreb", "Czechia": "Prague",
            "Slovakia": "Bratislava", "Switzerland": "Bern", "Netherlands": "Amsterdam", "Morocco": "Rabat",
            "Nigeria": "Abuja", "Ghana": "Accra", "Ethiopia": "Addis Ababa", "Indonesia": "Jakarta",
            "Philippines": "Manila", "South Korea": "Seoul", "Iran": "Tehran", "Iraq": "Baghdad",
            "Israel": "Jerusalem", "Saudi Arabia": "Riyadh", "Pakistan": "Islamabad", "Nepal": "Kathmandu",
            "Australia": "Canberra", "New Zealand": "Wellington", "Brazil": "Brasilia", "Uruguay": "Montevideo",
            "Paraguay": "Asuncion"}
WORDS = ["harbour", "lantern", "ferry", "library", "island", "puffin", "salt", "heron", "tower", "beacon",
         "market", "bread", "anchor", "sail", "cliff", "storm", "wall", "river", "garden", "window",
         "candle", "mountain", "apple", "chair", "pencil", "orange", "bridge", "castle", "forest", "rabbit",
         "kettle", "mirror", "ladder", "basket", "planet", "rocket", "violin", "tiger", "zebra", "lemon",
         "cloud", "thunder", "button", "pocket", "wheel", "engine", "desert", "valley", "meadow", "harvest",
         "glass", "stone", "paper", "silver", "copper", "marble", "velvet", "blanket", "feather", "compass"]
HELD_OUT, DEV = 100, 30
MAX_TOKENS = 48


def questions(rng: random.Random) -> list[tuple[str, str]]:
    items = [(f"What is the capital of {c}?", a) for c, a in CAPITALS.items()]
    sums = {(a, b) for a, b in ((rng.randint(2, 60), rng.randint(2, 60)) for _ in range(400))}
    items += [(f"What is {a} + {b}?", str(a + b)) for a, b in sorted(sums)[:150]]
    items += [(f"How many letters are in the word '{w}'?", str(len(w))) for w in WORDS]
    items = list(dict.fromkeys(items))
    rng.shuffle(items)
    return items


def near_miss(question: str, answer: str, rng: random.Random) -> str:
    """A wrong value a reader cannot tell from the right one by its form or length."""
    if question.startswith("What is the capital"):
        others = [c for c in CAPITALS.values() if c != answer and abs(len(c) - len(answer)) <= 2]
        return rng.choice(others)
    value = int(answer)
    spread = 2 if question.startswith("How many letters") else 9
    wrong = [v for v in range(max(1, value - spread), value + spread + 1) if v != value]
    return str(rng.choice(wrong))


def right_wrong_pairs(items: list[tuple[str, str]], per_question: int, rng: random.Random) -> list[dict]:
    pairs = []
    for question, answer in items:
        misses = set()
        while len(misses) < per_question:
            misses.add(near_miss(question, answer, rng))
        for miss in sorted(misses):
            pairs.append({"prompt": [{"role": "user", "content": question}],
                          "chosen": [{"role": "assistant", "content": f"ANSWER: {answer}"}],
                          "rejected": [{"role": "assistant", "content": f"ANSWER: {miss}"}]})
    return pairs


def split() -> tuple[list, list, list]:
    items = questions(random.Random(20261130))
    return items[:HELD_OUT], items[HELD_OUT:HELD_OUT + DEV], items[HELD_OUT + DEV:]


def write_pairs() -> None:
    from genlab.io import write_jsonl

    held, dev, train = split()
    rng = random.Random(20261201)
    for name, items, per_question in (("train", train, 3), ("dev", dev, 1), ("eval", held, 1)):
        write_jsonl(right_wrong_pairs(items, per_question, rng), HERE / f"right_wrong_{name}.jsonl")
    write_jsonl([{"prompt": [{"role": "user", "content": q}], "answer": a} for q, a in train],
                HERE / "right_wrong_prompts.jsonl")
    print(f"right/wrong pairs: {3 * len(train)} train, {len(dev)} dev, {len(held)} held out")


def main() -> None:
    from genlab.io import write_jsonl
    from genlab.models import get_model

    held, dev, train = split()
    write_jsonl([{"q": q, "answer": a} for q, a in held], HERE / "format_eval.jsonl")
    write_jsonl([{"q": q, "answer": a} for q, a in dev], HERE / "format_dev.jsonl")

    model = get_model("local", source="tune-data")
    sft, pairs, thumbs = [], [], []
    for number, (question, answer) in enumerate(train, 1):
        prompt = [{"role": "user", "content": question}]
        wanted = [{"role": "assistant", "content": f"ANSWER: {answer}"}]
        own = model.chat(prompt, temperature=0, max_tokens=MAX_TOKENS, cache=True).text.strip()
        unwanted = [{"role": "assistant", "content": own}]
        sft.append({"prompt": prompt, "completion": wanted})
        pairs.append({"prompt": prompt, "chosen": wanted, "rejected": unwanted})
        thumbs += [{"prompt": prompt, "completion": wanted, "label": True},
                   {"prompt": prompt, "completion": unwanted, "label": False}]
        print(f"\r{number}/{len(train)} replies", end="", file=sys.stderr)
    print(file=sys.stderr)
    write_jsonl(sft, HERE / "format_sft.jsonl")
    write_jsonl(pairs, HERE / "format_pairs.jsonl")
    write_jsonl(thumbs, HERE / "format_thumbs.jsonl")
    print(f"{len(train)} training questions (sft, pairs, thumbs), {len(dev)} dev, {len(held)} held out")
    write_pairs()


if __name__ == "__main__":
    write_pairs() if sys.argv[1:] == ["pairs"] else main()
