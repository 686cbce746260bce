"""Write the preference data for genlab's tuning bench: a narrow, checkable behaviour.

The preferred reply states the answer as "ANSWER: <value>" and nothing else; the rejected
one gives the same (correct) answer in chatty prose. A program can check the behaviour
(the reply matches ^ANSWER: ), so a reward model's accuracy and DPO's effect are measured,
not judged. Run once (fixed seed); the output is committed:

    python examples/tune/generate.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CAPITALS = {"France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Japan": "Tokyo",
            "Egypt": "Cairo", "Canada": "Ottawa", "Peru": "Lima", "Kenya": "Nairobi", "Norway": "Oslo",
            "Greece": "Athens", "Poland": "Warsaw", "Chile": "Santiago", "Cuba": "Havana", "Ireland": "Dublin",
            "Austria": "Vienna", "Portugal": "Lisbon", "Sweden": "Stockholm", "Finland": "Helsinki",
            "Hungary": "Budapest", "Thailand": "Bangkok", "Vietnam": "Hanoi", "Turkey": "Ankara",
            "Argentina": "Buenos Aires", "Mexico": "Mexico City", "India": "New Delhi", "China": "Beijing",
            "Russia": "Moscow", "Belgium": "Brussels", "Denmark": "Copenhagen"}
WORDS = ["harbour", "lantern", "ferry", "library", "island", "puffin", "salt", "heron", "tower", "beacon",
         "market", "bread", "anchor", "sail", "cliff", "storm", "wall", "river", "garden", "window"]
CHATTY = ["Great question! The answer is {a}. Let me know if you would like to know more.",
          "Sure! I think the answer would be {a}, as far as I know. Happy to help with anything else!",
          "That's an interesting one. After thinking about it, I'd say it is {a}. I hope this helps!",
          "The answer to your question is {a}. Feel free to ask me another question."]


def questions(rng: random.Random) -> list[tuple[str, str]]:
    items = [(f"What is the capital of {c}?", a) for c, a in CAPITALS.items()]
    items += [(f"What is {a} + {b}?", str(a + b)) for a, b in ((rng.randint(2, 30), rng.randint(2, 30))
                                                              for _ in range(30))]
    items += [(f"How many letters are in the word '{w}'?", str(len(w))) for w in WORDS]
    rng.shuffle(items)
    return list(dict.fromkeys(items))


def main() -> None:
    rng = random.Random(20261126)
    items = questions(rng)
    held, train = items[:30], items[30:]
    here = Path(__file__).parent
    with open(here / "format_pairs.jsonl", "w") as handle:
        for question, answer in train:
            handle.write(json.dumps({
                "prompt": [{"role": "user", "content": question}],
                "chosen": [{"role": "assistant", "content": f"ANSWER: {answer}"}],
                "rejected": [{"role": "assistant", "content": rng.choice(CHATTY).format(a=answer)}]}) + "\n")
    with open(here / "format_eval.jsonl", "w") as handle:
        for question, answer in held:
            handle.write(json.dumps({"q": question, "answer": answer}) + "\n")
    print(f"wrote {len(train)} pairs and {len(held)} held-out questions")


if __name__ == "__main__":
    main()
