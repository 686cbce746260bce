"""Generators of genlab's shipped test-time-compute tasks (run once; the JSONL is shipped).

    python -m genlab.search.tasks.generate

arithmetic.jsonl: multi-step word problems with known integer answers.
arith_1.jsonl, arith_2.jsonl, arith_3.jsonl: sums and differences of one, two and three
steps ("What is 31 - 9 + 4?"), 100 development items then 400 held-out items each.
topics.jsonl: short texts labelled sports / weather / food / technology (180 held out, 60 dev).
All are written for genlab from templates, with fixed seeds. The graded items were fixed
before any prompt was tried on them; prompts and settings are chosen on the "dev" split.
"""

from __future__ import annotations

import random
from pathlib import Path

from genlab.io import write_jsonl

DATA = Path(__file__).parent / "data"

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kemal", "Lena", "Mo", "Nia"]
THINGS = ["apples", "stickers", "marbles", "books", "pencils", "shells", "cards", "coins", "stamps", "eggs"]


def _arithmetic(rng: random.Random) -> dict:
    name, other = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    kind = rng.randrange(6)
    a, b, c = rng.randint(5, 40), rng.randint(2, 20), rng.randint(2, 9)
    if kind == 0:
        q = f"{name} has {a} {thing}. {name} buys {b} more and then gives {c} to {other}. How many {thing} does {name} have now?"
        return {"question": q, "answer": a + b - c}
    if kind == 1:
        q = f"{name} has {c} boxes with {b} {thing} in each box, and {a} loose {thing}. How many {thing} are there in all?"
        return {"question": q, "answer": c * b + a}
    if kind == 2:
        total = b * c
        q = f"{name} shares {total} {thing} equally among {c} friends, then each friend gets {a} more. How many {thing} does each friend have?"
        return {"question": q, "answer": b + a}
    if kind == 3:
        q = f"{name} had {a + b + c} {thing}, lost {b}, and then gave {c} to {other}. How many {thing} are left?"
        return {"question": q, "answer": a}
    if kind == 4:
        q = f"{name} reads {b} pages a day for {c} days, then {a} more pages on the last day. How many pages did {name} read?"
        return {"question": q, "answer": b * c + a}
    q = f"A shop has {a} {thing}. It sells {c} {thing} each day for {min(b, a // c) if a // c else 1} days. How many {thing} are left?"
    days = min(b, a // c) if a // c else 1
    return {"question": q, "answer": a - c * days}


TOPICS = {
    "sports": [
        "The {team} won the final {score} after extra time.", "Our striker scored twice in the second half.",
        "The marathon starts at {hour} tomorrow morning.", "She broke the national record in the {event}.",
        "The coach was sent off for arguing with the referee.", "Tickets for the {team} match sold out in minutes.",
        "He trains at the pool every day before school.", "The tennis final went to a fifth set.",
        "Our goalkeeper saved a penalty in the last minute.", "The cycling team climbed the pass in heavy traffic of riders.",
        "The league table changed after the {team} lost at home.", "She won gold in the {event} with a personal best.",
        "The basketball season opens next week against the {team}.", "Fans of the {team} cheered for an hour after the whistle.",
        "He pulled a hamstring during the warm-up and missed the game.",
    ],
    "weather": [
        "Heavy rain is expected over the {place} tonight.", "It will be sunny with a high of {temp} degrees.",
        "A storm warning is in place for the {place} until {hour}.", "Fog will clear by late morning.",
        "Snow fell overnight and the roads are icy.", "The wind will pick up to {speed} km/h this afternoon.",
        "Temperatures drop below freezing after sunset.", "A heatwave is forecast for the rest of the week.",
        "Expect scattered showers and a rainbow or two.", "The humidity makes it feel hotter than {temp} degrees.",
        "Thunder rolled across the {place} all night.", "Frost covered the fields at dawn.",
        "Clouds will build up before a wet evening.", "The drought ended with a week of steady rain.",
        "Hail damaged cars in the {place} this afternoon.",
    ],
    "food": [
        "Simmer the tomatoes with garlic for {mins} minutes.", "This bakery makes the best sourdough in the {place}.",
        "Add a pinch of salt before you whisk the eggs.", "The soup needs more pepper and a squeeze of lemon.",
        "We ordered dumplings, noodles and green tea.", "Roast the vegetables at {temp}0 degrees until golden.",
        "Her lemon cake won first prize at the fair.", "The new restaurant serves fresh fish every day.",
        "Knead the dough for {mins} minutes, then let it rise.", "I had porridge with honey and berries for breakfast.",
        "The curry was too spicy for the children.", "Slice the onions thinly and fry them in butter.",
        "They grill sweet corn at the market on Saturdays.", "Season the salad with olive oil and vinegar.",
        "The chef recommends the mushroom risotto tonight.",
    ],
    "technology": [
        "The update fixes a bug that drained the battery.", "Restart the router if the connection drops again.",
        "The new phone has a faster chip and a better camera.", "Our app crashed when users uploaded large files.",
        "Back up your laptop before installing the new system.", "The database query now runs in {mins} milliseconds.",
        "She wrote a script to rename a thousand photos at once.", "The printer keeps jamming on the second page.",
        "Developers released version {version} of the library today.", "The website was down for an hour after the deploy.",
        "He replaced the hard drive with a solid state disk.", "Two-factor login protects the account from attackers.",
        "The robot vacuum maps the whole flat in one run.", "Our servers moved to a new data centre this weekend.",
        "The smartwatch counts steps and measures heart rate.",
    ],
}
FILL = {"team": ["Rovers", "City", "Harbour", "Falcons", "Tigers"], "score": ["2-1", "3-2", "1-0"],
        "hour": ["7am", "noon", "6pm", "9am"], "event": ["100 metres", "long jump", "400 metres", "high jump"],
        "place": ["north coast", "valley", "city centre", "hills", "old town"], "temp": ["18", "24", "31", "12"],
        "speed": ["40", "60", "80"], "mins": ["10", "15", "20", "45"], "version": ["2.0", "3.1", "1.4"]}


def graded_expression(rng: random.Random, steps: int) -> dict:
    """One sum/difference of ``steps`` operations on numbers 2..60 whose running total stays >= 0."""
    total = rng.randint(2, 60)
    text = str(total)
    for _ in range(steps):
        b = rng.randint(2, 60)
        if rng.random() < 0.5 and total >= b:
            text, total = f"{text} - {b}", total - b
        else:
            text, total = f"{text} + {b}", total + b
    return {"question": f"What is {text}?", "answer": total}


GRADED_SPLITS = (("dev", 100), ("test", 400))
TOPICS_HELD_OUT = 180  # the first 180 texts; the last 60 are for development


def _fill(template: str, rng: random.Random) -> str:
    for key, values in FILL.items():
        template = template.replace("{" + key + "}", rng.choice(values))
    return template


def generate() -> None:
    rng = random.Random(20261126)
    problems = [_arithmetic(rng) for _ in range(120)]
    write_jsonl(({"id": f"arith-{i:03d}", **p} for i, p in enumerate(problems)), DATA / "arithmetic.jsonl")
    for steps in (1, 2, 3):
        graded = random.Random(20261201 + steps)
        write_jsonl(({"id": f"arith{steps}-{split}-{i:03d}", "split": split, **graded_expression(graded, steps)}
                     for split, count in GRADED_SPLITS for i in range(count)), DATA / f"arith_{steps}.jsonl")
    rows = []
    openers = ["", "", "Update: ", "Just heard: ", "Note: ", "Reportedly, ", "From the group chat: "]
    for label, templates in TOPICS.items():
        seen: set[str] = set()
        while len(seen) < 60:
            text = _fill(rng.choice(templates), rng)
            opener = rng.choice(openers)
            text = opener + (text[0].lower() + text[1:] if opener.endswith(", ") else text)
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    write_jsonl(({"id": f"topic-{i:03d}", "split": "test" if i < TOPICS_HELD_OUT else "dev", **row}
                 for i, row in enumerate(rows)), DATA / "topics.jsonl")


if __name__ == "__main__":
    generate()
