"""Feedback captured in `genlab chat` and `genlab serve`, exported in TRL's dataset formats.

    sft          {"messages": [... , {"role": "assistant", "content": reply}]}
                 thumbs-up replies, and the better answers users wrote
    preference   {"prompt": [messages], "chosen": [assistant], "rejected": [assistant]}
                 pairwise preferences on the same prompt, and (better answer ≻ the reply) pairs
    unpaired     {"prompt": [messages], "completion": [assistant], "label": true|false}
                 thumbs up / down (what KTO trains on); a better answer counts as a thumbs up

When one reply is rated more than once, the latest rating counts.
"""

from __future__ import annotations

import json

from genlab.errors import ConfigError
from genlab.store import Store

FORMATS = ("sft", "preference", "unpaired")


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def current_rows(store: Store) -> tuple[list[dict], list[dict], int]:
    """Return (the latest rating of each reply, the pairwise preferences, how many earlier
    ratings a later one of the same reply replaced)."""
    latest: dict[tuple, dict] = {}
    pairs, rated = [], 0
    for row in store.feedback_rows():
        if row["rejected_id"]:
            pairs.append(row)
        else:
            latest[(row["response_id"], row["choice_index"])] = row
            rated += 1
    return list(latest.values()), pairs, rated - len(latest)


def export_rows(store: Store, fmt: str) -> tuple[list[dict], int]:
    """Return (rows in ``fmt``, feedback rows that could not be used in it)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; use {', '.join(FORMATS)}")
    ratings, pairs, _ = current_rows(store)
    skipped = 0
    out: list[dict] = []
    if fmt == "sft":
        for row in ratings:
            messages = json.loads(row["messages"])
            if row["better"]:
                out.append({"messages": messages + _assistant(row["better"])})
            elif row["rating"] == 1:
                out.append({"messages": messages + _assistant(row["completion"])})
            else:
                skipped += 1
    elif fmt == "preference":
        for row in pairs:
            if row["messages"] != row["rejected_messages"] or row["completion"] == row["rejected_completion"]:
                skipped += 1           # answers to different prompts, or the same answer twice, teach nothing
                continue
            out.append({"prompt": json.loads(row["messages"]), "chosen": _assistant(row["completion"]),
                        "rejected": _assistant(row["rejected_completion"])})
        for row in ratings:
            if row["better"] and row["better"] != row["completion"]:
                out.append({"prompt": json.loads(row["messages"]), "chosen": _assistant(row["better"]),
                            "rejected": _assistant(row["completion"])})
            else:
                skipped += 1
    else:
        for row in ratings:
            prompt = json.loads(row["messages"])
            if row["rating"] is not None:
                out.append({"prompt": prompt, "completion": _assistant(row["completion"]), "label": row["rating"] > 0})
            if row["better"]:
                out.append({"prompt": prompt, "completion": _assistant(row["better"]), "label": True})
        skipped += len(pairs)
    return out, skipped
