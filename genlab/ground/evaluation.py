"""Retrieval evaluation on a QA file, per retriever, and end-to-end groundedness.

QA file: JSONL, one question per line::

    {"question": "When was the lighthouse built?", "evidence": "built in 1847", "answer": "1847"}
    {"question": "Who won the 1998 World Cup?", "answerable": false}

A chunk is relevant when it contains the evidence (a string or a list of strings, compared
case- and whitespace-insensitively); ``source`` (a file name) narrows that to one source.
Defining relevance by evidence rather than chunk ids keeps a QA file valid when the
chunking changes. Unanswerable rows only count in the end-to-end abstention figures.

    recall@k   share of a question's relevant chunks in the top k (mean over questions)
    MRR        1 / rank of the first relevant chunk (0 beyond rank 100)
    nDCG@10    binary-relevance nDCG over the top 10
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from genlab.errors import ConfigError
from genlab.ground.retrieval import METHODS, NotebookSearch

DEPTH = 100
RECALL_KS = (1, 5, 10)


@dataclass(frozen=True)
class QARow:
    line: int
    question: str
    evidence: tuple[str, ...]
    source: str | None
    answer: str | None
    answerable: bool


def load_qa(path: Path) -> list[QARow]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the QA file ({exc.strerror or exc})") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("question"), str) or not data["question"].strip():
            raise ConfigError(f"{path}:{number}: each line needs a non-empty \"question\" string")
        evidence = data.get("evidence", [])
        evidence = (evidence,) if isinstance(evidence, str) else tuple(evidence)
        answerable = bool(data.get("answerable", True))
        if answerable and not evidence:
            raise ConfigError(f"{path}:{number}: an answerable question needs \"evidence\" (text the relevant "
                              "chunk contains); mark others \"answerable\": false")
        rows.append(QARow(number, data["question"], evidence, data.get("source"), data.get("answer"), answerable))
    if not rows:
        raise ConfigError(f"{path}: the QA file has no questions")
    return rows


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def relevant_chunks(search: NotebookSearch, row: QARow, path: Path) -> set[int]:
    found = {i for i, c in enumerate(search.chunks)
             if (row.source is None or Path(c.path).name == row.source)
             and any(_normal(e) in _normal(c.text) for e in row.evidence)}
    if not found:
        raise ConfigError(f"{path}:{row.line}: no chunk of notebook '{search.notebook.name}' contains the "
                          f"evidence {list(row.evidence)}; fix the evidence or add the source")
    return found


def retrieval_metrics(search: NotebookSearch, rows: list[QARow], path: Path, methods=METHODS,
                      progress=None) -> dict[str, dict[str, float]]:
    """Mean recall@1/5/10, MRR and nDCG@10 per method over the answerable rows."""
    answerable = [r for r in rows if r.answerable]
    relevant = [relevant_chunks(search, r, path) for r in answerable]
    results = {}
    for method in methods:
        totals = {f"recall@{k}": 0.0 for k in RECALL_KS} | {"mrr": 0.0, "ndcg@10": 0.0}
        for row, wanted in zip(answerable, relevant):
            ranking = [i for i, _ in search.rank(row.question, method, DEPTH)]
            for k in RECALL_KS:
                totals[f"recall@{k}"] += len(wanted & set(ranking[:k])) / len(wanted)
            first = next((rank for rank, i in enumerate(ranking, 1) if i in wanted), None)
            totals["mrr"] += 1 / first if first else 0.0
            dcg = sum(1 / math.log2(rank + 1) for rank, i in enumerate(ranking[:10], 1) if i in wanted)
            ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(wanted), 10) + 1))
            totals["ndcg@10"] += dcg / ideal
            if progress:
                progress()
        results[method] = {name: value / len(answerable) for name, value in totals.items()} if answerable else {}
    return results


def end_to_end(model, search: NotebookSearch, rows: list[QARow], *, judge=None, method: str = "lexical",
               k: int = 4, progress=None) -> dict:
    """Answer every question; report groundedness, abstentions and answers containing the reference."""
    from genlab.ground.answer import ask
    from genlab.ground.check import check_groundedness

    per_row, fractions, precisions = [], [], []
    for row in rows:
        answer = ask(model, search, row.question, k=k)
        report = check_groundedness(answer, judge, method)
        if report.supported_fraction is not None:
            fractions.append(report.supported_fraction)
        if report.citation_precision is not None:
            precisions.append(report.citation_precision)
        contains = _normal(row.answer) in _normal(answer.answer) if row.answer else None
        per_row.append({"question": row.question, "answerable": row.answerable, "answer": answer.answer,
                        "abstained": answer.abstained, "contains_reference": contains, **report.to_dict()})
        if progress:
            progress()
    answerable = [r for r in per_row if r["answerable"]]
    unanswerable = [r for r in per_row if not r["answerable"]]
    with_reference = [r for r in answerable if r["contains_reference"] is not None]
    return {
        "questions": len(per_row),
        "supported_fraction": _mean(fractions),
        "citation_precision": _mean(precisions),
        "abstained_when_answerable": _mean([r["abstained"] for r in answerable]),
        "abstained_when_unanswerable": _mean([r["abstained"] for r in unanswerable]),
        "answer_contains_reference": _mean([r["contains_reference"] for r in with_reference]),
        "rows": per_row,
    }


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None
