"""Tasks with gold answers, shipped so test-time compute can be measured offline.

- ``arith-1``, ``arith-2``, ``arith-3``: sums and differences of one, two and three steps
  ("What is 31 - 9 + 4?"), 100 development and 400 held-out items each (generated).
- ``arithmetic``: 120 multi-step word problems with integer answers (generated).
- ``topics``: 240 short texts labelled sports / weather / food / technology, 180 held out and
  60 for development (generated).

See generate.py for how they were made. Each task has one prompt (`Task.messages`), the
same for every method: a direct answer, a greedy chain and sampled chains differ only in
how they are sampled and selected. The worked examples below are not test items.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from genlab.errors import ConfigError
from genlab.io import read_jsonl
from genlab.search.classify import Example
from genlab.search.cot import WorkedExample, final_answer, final_number, few_shot_cot, parse_number


@dataclass
class Task:
    name: str
    kind: str                              # "number" or "label"
    items: list[dict]                      # {"id", "question"/"text", "answer"/"label", "split"?}
    labels: list[str] = field(default_factory=list)
    worked: list[WorkedExample] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    checkable: bool = False                # chains are equations a program can re-compute

    def question(self, item: dict) -> str:
        return item["question"] if self.kind == "number" else item["text"]

    def gold(self, item: dict) -> str:
        return str(item["answer"]) if self.kind == "number" else item["label"]

    def messages(self, question: str) -> list[dict[str, str]]:
        """The task's one prompt: worked examples whose reasoning ends "The answer is X."."""
        if self.kind == "number":
            return few_shot_cot(question, self.worked)
        system = ("Classify each text into exactly one of these labels: " + ", ".join(self.labels)
                  + ". Think briefly, then end with \"The answer is LABEL.\"")
        return [{"role": "system", "content": system}, *few_shot_cot(question, self.worked)]

    def answer_format(self) -> dict[str, Any]:
        """The response format of an answer given with no reasoning (the direct method)."""
        if self.kind == "label":
            return {"type": "enum", "enum": self.labels}
        schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
                  "additionalProperties": False}
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}

    def chain_grammar(self) -> str | None:
        """For a label task, a GBNF grammar of a chain: up to three sentences of free reasoning,
        then "The answer is LABEL." with LABEL one of the labels, so every chain that ends gives
        a label (on backends that take grammars). Without it the embedded model ended more than
        half of its topic chains on a word that is no label ("The answer is time."). Number
        tasks have none: their chains end on a number on their own, or count as giving none."""
        if self.kind != "label":
            return None
        labels = " | ".join(json.dumps(label) for label in self.labels)
        return ('root ::= sentence sentence? sentence? "The answer is " label "."\n'
                'sentence ::= [^.\\n]{1,200} ". "\n'
                f"label ::= {labels}")

    def read_direct(self, text: str) -> str | None:
        """The answer of a response made under `answer_format`."""
        if self.kind == "label":
            return text if text in self.labels else None
        try:
            return parse_number(str(json.loads(text)["answer"]))
        except (ValueError, KeyError, TypeError):
            return None

    def extract(self, chain: str) -> str | None:
        """A chain's answer: what follows its last "The answer is"; None (invalid) without one."""
        if self.kind == "number":
            return final_number(chain)
        said = final_answer(chain)
        if said is None:
            return None
        named = [label for label in self.labels if re.match(rf"\W*{re.escape(label)}\b", said, re.I)]
        return named[0] if named else None


def _steps(*pairs: tuple[str, str]) -> list[WorkedExample]:
    return [WorkedExample(q, reasoning, re.findall(r"-?\d+", reasoning)[-1]) for q, reasoning in pairs]


# Each difficulty's worked examples have its number of steps: shown longer chains, the
# model keeps adding steps to a one-step sum (seen on the dev split).
GRADED_WORKED = {
    1: _steps(("What is 12 + 5?", "12 + 5 = 17."), ("What is 31 - 9?", "31 - 9 = 22."),
              ("What is 4 + 26?", "4 + 26 = 30.")),
    2: _steps(("What is 31 - 9 + 4?", "31 - 9 = 22. 22 + 4 = 26."),
              ("What is 15 + 20 - 7?", "15 + 20 = 35. 35 - 7 = 28."),
              ("What is 50 - 12 - 3?", "50 - 12 = 38. 38 - 3 = 35.")),
    3: _steps(("What is 8 + 15 - 6 + 10?", "8 + 15 = 23. 23 - 6 = 17. 17 + 10 = 27."),
              ("What is 40 - 5 + 12 - 9?", "40 - 5 = 35. 35 + 12 = 47. 47 - 9 = 38."),
              ("What is 6 + 7 + 20 - 11?", "6 + 7 = 13. 13 + 20 = 33. 33 - 11 = 22.")),
}

ARITHMETIC_WORKED = [
    WorkedExample("Sam has 12 pens. He buys 5 more and then gives 3 to Lee. How many pens does Sam have now?",
                  "Sam starts with 12 pens. 12 + 5 = 17. Then 17 - 3 = 14.", "14"),
    WorkedExample("Rita has 4 bags with 6 beads in each bag, and 7 loose beads. How many beads are there in all?",
                  "The bags hold 4 * 6 = 24 beads. 24 + 7 = 31.", "31"),
    WorkedExample("Omar shares 20 grapes equally among 5 friends, then each friend gets 2 more. How many grapes "
                  "does each friend have?", "Each friend first gets 20 / 5 = 4 grapes. 4 + 2 = 6.", "6"),
]

TOPIC_EXAMPLES = [
    Example("The striker signed a new contract with the club.", "sports"),
    Example("Strong winds and rain will reach the coast by evening.", "weather"),
    Example("Whisk the cream with sugar until it forms soft peaks.", "food"),
    Example("The laptop froze while installing the driver update.", "technology"),
]

TOPIC_WORKED = [
    WorkedExample(TOPIC_EXAMPLES[0].text, "A striker plays for a club in a team game.", "sports"),
    WorkedExample(TOPIC_EXAMPLES[1].text, "Wind and rain are the forecast.", "weather"),
    WorkedExample(TOPIC_EXAMPLES[2].text, "Whisking cream with sugar is cooking.", "food"),
    WorkedExample(TOPIC_EXAMPLES[3].text, "A laptop and a driver update are computers.", "technology"),
]

FILES = {"arith-1": "arith_1.jsonl", "arith-2": "arith_2.jsonl", "arith-3": "arith_3.jsonl",
         "arithmetic": "arithmetic.jsonl", "topics": "topics.jsonl"}
SPLITS = ("test", "dev", "all")


def load_task(name: str, split: str = "all") -> Task:
    """Load a shipped task by name; ``split`` keeps its held-out ("test") or development ("dev")
    items (a task without a development split has only held-out items)."""
    if name not in FILES:
        raise ConfigError(f"no task '{name}'; shipped tasks: {', '.join(FILES)}")
    if split not in SPLITS:
        raise ConfigError(f"no split '{split}'; choose one of: {', '.join(SPLITS)}")
    items = [row for _, row in read_jsonl(resources.files("genlab.search.tasks").joinpath(f"data/{FILES[name]}"),
                                          f"task {name}")]
    if split != "all":
        items = [row for row in items if row.get("split", "test") == split]
        if not items:
            raise ConfigError(f"task '{name}' has no {split} items; its items are all held out (--split test)")
    if name.startswith("arith-"):
        return Task(name, "number", items, worked=GRADED_WORKED[int(name[-1])], checkable=True)
    if name == "arithmetic":
        return Task(name, "number", items, worked=ARITHMETIC_WORKED, checkable=True)
    labels = ["sports", "weather", "food", "technology"]
    return Task(name, "label", items, labels=labels, worked=TOPIC_WORKED, examples=TOPIC_EXAMPLES)
