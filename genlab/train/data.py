"""Training data: JSONL in TRL's formats, checked line by line before any work starts.

    sft          {"messages": [...]} (last message the assistant's), or {"prompt", "completion"}
    preference   {"prompt", "chosen", "rejected"}
    unpaired     {"prompt", "completion", "label": true|false}
    prompts      {"prompt"} (GRPO, distillation)

Each text field is a string, or a list of chat messages ({"role", "content"}) as
`genlab feedback export` writes them; TRL applies the chat template to the latter.
"""

from __future__ import annotations

import random
from pathlib import Path

from genlab.errors import ConfigError
from genlab.io import read_jsonl

FIELDS = {
    "sft": (("messages",), ("prompt", "completion")),
    "preference": (("prompt", "chosen", "rejected"),),
    "unpaired": (("prompt", "completion", "label"),),
    "prompts": (("prompt",),),
}
#: The commands that read each kind: named when a row has another kind's shape.
READ_BY = {"sft": "genlab tune sft", "preference": "genlab tune dpo or reward",
           "unpaired": "genlab tune kto", "prompts": "genlab tune grpo"}
ROLES = {"system", "user", "assistant"}
#: Share of rows held out to measure a trained model on (at least one row).
HELD_OUT = 0.2


def _a(kind: str) -> str:
    return f"{'an' if kind in ('sft', 'unpaired') else 'a'} {kind}"


def load_rows(path: Path, kind: str, *, min_rows: int = 2, keep_fields: bool = False) -> list[dict]:
    """Read ``path`` as ``kind`` rows; raise ConfigError naming the line and the fix.
    ``keep_fields`` keeps a row's other fields (a GRPO checker reads them)."""
    rows = []
    shapes = FIELDS[kind]
    for number, row in read_jsonl(path):     # "data file": training, held-out and --eval files alike
        where = f"{path}:{number}"
        shape = next((s for s in shapes if all(k in row for k in s)), None)
        if shape is None:
            wanted = " or ".join("{" + ", ".join(s) + "}" for s in shapes)
            fits = max(((len(s), other) for other, ss in FIELDS.items() for s in ss
                        if other != kind and set(s) <= set(row)), default=None)
            hint = f" ({_a(fits[1])} row, which {READ_BY[fits[1]]} reads)" if fits else ""
            raise ConfigError(f"{where}: {_a(kind)} row needs {wanted}; got keys {sorted(row)}{hint}")
        for key in shape:
            if key == "label":
                if not isinstance(row[key], bool):
                    raise ConfigError(f"{where}: \"label\" must be true (thumbs up) or false (thumbs down)")
            else:
                _check_text(row[key], f"{where}: \"{key}\"", last_assistant=(key == "messages"))
        if kind == "preference" and row["chosen"] == row["rejected"]:
            # DPO's loss has no gradient on such a pair, and a reward model learns nothing from it
            raise ConfigError(f"{where}: \"chosen\" and \"rejected\" are the same; a pair teaches only "
                              "where they differ, so fix or remove the row")
        rows.append(row if keep_fields else {k: row[k] for k in shape})
    if len({tuple(r) for r in rows}) > 1:
        raise ConfigError(f"{path}: rows mix {' and '.join(sorted({', '.join(r) for r in rows}))}; "
                          "use one shape per file")
    if len(rows) < min_rows:
        raise ConfigError(f"{path}: {len(rows)} {kind} row{'s' * (len(rows) != 1)}; this needs at least {min_rows}")
    if kind == "unpaired" and len({r["label"] for r in rows}) < 2:
        raise ConfigError(f"{path}: KTO needs both thumbs up (label true) and thumbs down (label false) rows")
    return rows


def _check_text(value, where: str, last_assistant: bool = False) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError(f"{where} is empty")
        return
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a string or a non-empty list of chat messages")
    for message in value:
        if (not isinstance(message, dict) or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)):
            raise ConfigError(f"{where} holds a message that is not {{\"role\": system|user|assistant, "
                              "\"content\": string}")
    if last_assistant and value[-1]["role"] != "assistant":
        raise ConfigError(f"{where} must end with the assistant's message (what the model should learn to say)")


def held_out_split(rows: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held out): a seeded HELD_OUT share of the rows, at least one, is held out."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = max(1, round(HELD_OUT * len(rows)))
    return [rows[i] for i in order[held:]], [rows[i] for i in order[:held]]


def conversation(row: dict) -> list[dict]:
    """One chat conversation from a {messages} row or a {prompt, completion} row (each
    field a string or a list of messages)."""
    if "messages" in row:
        return row["messages"]
    prompt, completion = row["prompt"], row["completion"]
    prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    completion = [{"role": "assistant", "content": completion}] if isinstance(completion, str) else list(completion)
    return prompt + completion
