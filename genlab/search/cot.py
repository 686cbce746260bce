"""Chain-of-thought prompts, and getting the final answer out of a chain.

Zero-shot CoT appends "Let's think step by step." (Kojima et al., 2022); few-shot CoT
shows worked examples whose reasoning ends in "The answer is X." (Wei et al., 2022).
Sampled chains differ from run to run because each token is drawn from the model's
distribution (temperature > 0); greedy decoding (temperature 0) gives one chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ZERO_SHOT_TRIGGER = "Let's think step by step."
ANSWER_INSTRUCTION = 'End with "The answer is X."'
DIRECT_NUMBER_INSTRUCTION = "Answer with the number only."


@dataclass(frozen=True)
class WorkedExample:
    """A question with its reasoning and answer, for few-shot CoT."""

    question: str
    reasoning: str
    answer: str


def zero_shot_cot(question: str) -> list[dict[str, str]]:
    """Return chat messages asking for step-by-step reasoning before the answer."""
    return [{"role": "user", "content": f"{question}\n{ANSWER_INSTRUCTION} {ZERO_SHOT_TRIGGER}"}]


def few_shot_cot(question: str, examples: list[WorkedExample]) -> list[dict[str, str]]:
    """Return chat messages with worked examples as earlier turns, then the question."""
    messages: list[dict[str, str]] = []
    for example in examples:
        messages.append({"role": "user", "content": f"{example.question}\n{ANSWER_INSTRUCTION}"})
        messages.append({"role": "assistant", "content": f"{example.reasoning} The answer is {example.answer}."})
    messages.append({"role": "user", "content": f"{question}\n{ANSWER_INSTRUCTION}"})
    return messages


def direct(question: str, instruction: str = DIRECT_NUMBER_INSTRUCTION) -> list[dict[str, str]]:
    """Return chat messages asking for the answer with no reasoning."""
    return [{"role": "user", "content": f"{question}\n{instruction}"}]


_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_FINAL_PATTERNS = [
    re.compile(rf"answer\s*(?:is|=|:)\s*\**\s*({_NUMBER})", re.I),
    re.compile(rf"####\s*({_NUMBER})"),
    re.compile(rf"\\boxed\{{\s*({_NUMBER})\s*\}}"),
    re.compile(rf"(?:total|result|final)\s*(?:is|=|:)\s*\**\s*({_NUMBER})", re.I),
]


def parse_number(text: str) -> str | None:
    """A number written in a chain ("$1,234", "42.", "2.50"), normalised ("1234", "42", "2.5")."""
    cleaned = text.replace("$", "").replace(",", "").rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return str(int(value)) if value == int(value) else str(value)


def extract_number(text: str) -> str | None:
    """Return the final numeric answer of a chain ("The answer is 42", "#### 42",
    "\\boxed{42}", "total: $1,234"), else the last number in it, normalised ("42",
    "-3", "2.5"); None if there is no number."""
    for pattern in _FINAL_PATTERNS:
        matches = pattern.findall(text)
        if matches:
            return parse_number(matches[-1])
    numbers = re.findall(_NUMBER, text)
    return parse_number(numbers[-1]) if numbers else None


_FINAL = re.compile(r"answer\s+is\s*:?\s*", re.I)


def final_answer(text: str) -> str | None:
    """What follows a chain's last "The answer is", up to the end of its line; None when the
    chain never says it. Stricter than `extract_number`: a chain that stops before its
    answer counts as giving none, not as giving its last number."""
    said = list(_FINAL.finditer(text))
    if not said:
        return None
    return text[said[-1].end():].split("\n", 1)[0].strip()


def final_number(text: str) -> str | None:
    """The number a chain's last "The answer is" states, normalised as `parse_number` does;
    None when the chain never says it or says no number there."""
    said = final_answer(text)
    found = re.match(rf"\s*({_NUMBER})", said) if said is not None else None
    return parse_number(found.group(1)) if found else None


def extract_label(text: str, labels: list[str]) -> str | None:
    """Return the label a free-text answer names: the one after "answer is"/"label:" if
    any, else the only label mentioned, else the last one mentioned; None if none is."""
    def find(haystack: str) -> list[tuple[int, str]]:
        hits = []
        for label in labels:
            for match in re.finditer(rf"(?<![\w-]){re.escape(label)}(?![\w-])", haystack, re.I):
                hits.append((match.start(), label))
        return sorted(hits)

    marker = re.search(r"(?:answer|label|category|classification)\s*(?:is|:)\s*", text, re.I)
    if marker:
        after = find(text[marker.end():])
        if after:
            return after[0][1]
    hits = find(text)
    if not hits:
        return None
    return hits[-1][1]


def extract_option(text: str, options: str = "ABCD") -> str | None:
    """Return a multiple-choice letter ("(B)", "answer is C", "B."), or None."""
    letters = re.escape(options)
    for pattern in (rf"answer\s*(?:is|:)\s*\(?([{letters}])\)?\b", rf"\(([{letters}])\)", rf"^\s*([{letters}])[.)]"):
        found = re.findall(pattern, text, re.I | re.M)
        if found:
            return found[-1].upper()
    return None
