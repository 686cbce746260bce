"""Small tasks with gold answers, shipped so test-time compute can be measured offline.

- ``arithmetic``: 120 multi-step word problems with integer answers (generated).
- ``topics``: 240 short texts labelled sports / weather / food / technology (generated).

See generate.py for how they were made. Few-shot examples below are separate from
the test items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from genlab.errors import ConfigError
from genlab.io import read_jsonl
from genlab.search.classify import Example
from genlab.search.cot import WorkedExample


@dataclass
class Task:
    name: str
    kind: str                              # "number" or "label"
    items: list[dict]                      # {"id", "question"/"text", "answer"/"label"}
    labels: list[str] = field(default_factory=list)
    worked: list[WorkedExample] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)


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


def load_task(name: str) -> Task:
    """Load a shipped task by name."""
    files = {"arithmetic": "arithmetic.jsonl", "topics": "topics.jsonl"}
    if name not in files:
        raise ConfigError(f"no task '{name}'; shipped tasks: {', '.join(files)}")
    items = [row for _, row in read_jsonl(resources.files("genlab.search.tasks").joinpath(f"data/{files[name]}"),
                                          f"task {name}")]
    if name == "arithmetic":
        return Task(name, "number", items, worked=ARITHMETIC_WORKED)
    labels = ["sports", "weather", "food", "technology"]
    return Task(name, "label", items, labels=labels, examples=TOPIC_EXAMPLES)
