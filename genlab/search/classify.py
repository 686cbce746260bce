"""Classification with enum mode: the model returns exactly one of a set of labels.

Enum mode is the backend's: where genlab has the model's log-probabilities (llama.cpp,
transformers) each label is scored whole and the likeliest answered; OpenAI-compatible
endpoints get a JSON schema with a string ``enum`` (the portable form of Gemini's
``text/x.enum``), decoded token by token, as remote APIs do not score arbitrary strings.
A reasoning step (``reasoning=True``) is a call of its own before the label's.

``method="free"`` asks the same question without constraint and parses the label out
of the text, for comparison.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from genlab.errors import ConfigError
from genlab.io import json_object, read_jsonl
from genlab.models import Model, Usage
from genlab.search.cot import extract_label

REASONING_INSTRUCTION = ("Think about which label fits the text, in two or three sentences. "
                         "Do not give the label yet.")


def check_labels(labels: list[str], option: str = "--labels") -> list[str]:
    """Return the labels, stripped; raise ConfigError for an unusable set (``option`` gave them)."""
    cleaned = [label.strip() for label in labels]
    example = f"e.g. {option} positive,negative"
    if not cleaned or all(not label for label in cleaned):
        raise ConfigError(f"the label set is empty; give at least two labels, {example}")
    if any(not label for label in cleaned):
        raise ConfigError("a label is empty (two commas in a row?); remove it")
    lowered = [label.lower() for label in cleaned]
    dupes = sorted({label for label, low in zip(cleaned, lowered) if lowered.count(low) > 1})
    if dupes:
        raise ConfigError(f"labels must be distinct (ignoring case); repeated: {', '.join(dupes)}")
    for label in cleaned:
        if not label.isprintable() or any(0xD800 <= ord(ch) <= 0xDFFF for ch in label):
            raise ConfigError(f"the label {label!r} has characters a model cannot write (control characters or "
                              "broken unicode); remove them")
    if len(cleaned) < 2:
        raise ConfigError(f"one label ({cleaned[0]}) leaves nothing to decide; give at least two, separated by "
                          f"commas, {example}")
    return cleaned


@dataclass
class Example:
    """A labelled text for few-shot prompting."""

    text: str
    label: str


@dataclass
class Classification:
    label: str | None                 # None only in free mode, when no label could be parsed
    reasoning: str | None = None
    raw: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    cache_hit: bool = False           # answered from the response cache: no call, no cost

    def valid(self, labels: list[str]) -> bool:
        return self.label in labels


class Classifier:
    """Classifies texts with one model into a fixed label set."""

    def __init__(self, model: Model, labels: list[str], *, examples: list[Example] | None = None,
                 reasoning: bool = False, method: str = "enum", temperature: float = 0.0,
                 max_reasoning_tokens: int = 160, cache: bool = False):
        if method not in ("enum", "free"):
            raise ConfigError("method must be enum or free")
        self.model = model
        self.labels = check_labels(labels)
        self.examples = examples or []
        for example in self.examples:
            if example.label not in self.labels:
                raise ConfigError(f"the example label {example.label!r} is not one of the labels {self.labels}")
        self.reasoning, self.method, self.temperature = reasoning, method, temperature
        self.max_reasoning_tokens = max_reasoning_tokens
        self.cache = cache      # reuse stored answers (greedy or seeded ones): a re-run pays only for new texts

    def messages(self, text: str) -> list[dict[str, str]]:
        """The conversation asked for ``text`` (also the prompt to fine-tune a model on)."""
        system = ("Classify the text into exactly one of these labels: " + ", ".join(self.labels) + ".")
        if self.method == "free":
            system += " Reply with the label."
        messages = [{"role": "system", "content": system}]
        for example in self.examples:
            messages += [{"role": "user", "content": example.text}, {"role": "assistant", "content": example.label}]
        messages.append({"role": "user", "content": text})
        return messages

    def classify(self, text: str) -> Classification:
        """Classify one text (reasoning first when asked: the order matters)."""
        messages = self.messages(text)
        usage, cost, reasoning = Usage(), 0.0, None
        if self.reasoning:
            thought = self.model.chat(messages + [{"role": "user", "content": REASONING_INSTRUCTION}],
                                      temperature=self.temperature, max_tokens=self.max_reasoning_tokens,
                                      cache=self.cache)
            reasoning = thought.text.strip()
            usage, cost = usage + thought.usage, cost + (thought.cost_usd or 0.0)
            messages = messages + [{"role": "user", "content": REASONING_INSTRUCTION},
                                   {"role": "assistant", "content": reasoning},
                                   {"role": "user", "content": "Now give the label."}]
        if self.method == "enum":
            answer = self.model.chat(messages, temperature=self.temperature,
                                     response_format={"type": "enum", "enum": self.labels}, cache=self.cache)
            label = answer.text
        else:
            answer = self.model.chat(messages, temperature=self.temperature, max_tokens=32, cache=self.cache)
            label = extract_label(answer.text, self.labels)
        return Classification(label, reasoning, answer.text, usage + answer.usage, cost + (answer.cost_usd or 0.0),
                              answer.cache_hit)

    def classify_many(self, texts: Iterable[str], concurrency: int = 4) -> Iterator[Classification]:
        """Classify texts concurrently, yielding results in input order."""
        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            yield from pool.map(self.classify, texts)


def read_rows(lines: Iterable[str], field_name: str = "text", source: str = "input") -> list[dict[str, Any]]:
    """Read JSONL rows (or plain text lines) and check each has the text field."""
    rows = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        row = json_object(stripped, f"{source}:{number}") if stripped.startswith("{") else {field_name: line.rstrip("\n")}
        if field_name not in row:
            raise ConfigError(f"{source}:{number}: no text field '{field_name}'; choose the field with --field NAME")
        if not isinstance(row[field_name], str):
            raise ConfigError(f"{source}:{number}: the field '{field_name}' holds {type(row[field_name]).__name__}, "
                              'not text; write it as a JSON string ("5")')
        rows.append(row)
    if not rows:
        raise ConfigError(f"{source} has no rows to classify")
    return rows


def read_examples(path: Path) -> list[Example]:
    """Few-shot examples from a JSONL file of {"text", "label"} rows."""
    examples = []
    for number, row in read_jsonl(path, "few-shot examples file"):
        if row.get("text") is None or row.get("label") is None:
            raise ConfigError(f'{path}:{number}: a few-shot example needs {{"text": ..., "label": ...}}')
        examples.append(Example(str(row["text"]), str(row["label"])))
    return examples
