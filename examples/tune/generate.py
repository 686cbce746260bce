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

    .venv/bin/python examples/tune/generate.py
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


def main() -> None:
    from genlab.io import write_jsonl
    from genlab.models import get_model

    items = questions(random.Random(20261130))
    held, dev, train = items[:HELD_OUT], items[HELD_OUT:HELD_OUT + DEV], items[HELD_OUT + DEV:]
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


if __name__ == "__main__":
    main()
