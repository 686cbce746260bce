"""The hard grounding benchmark's data (examples/notebook/pyref): what the README and
bench/ground_hard.py claim about it holds, and every answer key points into its page."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from genlab.ground.evaluation import load_qa

PYREF = Path(__file__).resolve().parent.parent / "examples" / "notebook" / "pyref"
QA = PYREF.parent / "pyref-qa.jsonl"


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def test_the_questions_are_many_split_in_two_and_each_half_has_every_kind():
    rows = [json.loads(line) for line in QA.read_text().splitlines()]
    assert len(load_qa(QA)) == len(rows) >= 150
    assert len({r["id"] for r in rows}) == len({r["question"] for r in rows}) == len(rows)
    kinds = Counter((r["split"], r["kind"]) for r in rows)
    assert set(kinds) == {(half, kind) for half in ("dev", "heldout") for kind in ("named", "plain", "unanswered")}
    assert sum(n for (_, kind), n in kinds.items() if kind == "unanswered") >= 30
    for kind in ("named", "plain", "unanswered"):
        assert abs(kinds["dev", kind] - kinds["heldout", kind]) <= 1
    assert all(r.get("answerable", True) == (r["kind"] != "unanswered") for r in rows)


def test_each_answer_key_is_in_the_page_it_names():
    pages = {path.name: _normal(path.read_text()) for path in PYREF.glob("*.md")}
    assert len(pages) >= 30
    for row in map(json.loads, QA.read_text().splitlines()):
        if row["kind"] == "unanswered":
            continue
        assert _normal(row["evidence"]) in pages[row["source"]], row["id"]
        assert row["answer"].lower() in row["gold"].lower(), row["id"]
