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

import math
from dataclasses import dataclass
from pathlib import Path

from genlab.errors import ConfigError
from genlab.io import read_jsonl
from genlab.ground.passage import Passage, SearchBackend, all_passages, display_name

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
    rows = []
    for number, data in read_jsonl(path, "QA file"):
        if not isinstance(data.get("question"), str) or not data["question"].strip():
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


def relevant_chunks(passages: list[Passage], row: QARow, path: Path, holder: str) -> set[int]:
    """Indexes of the passages that hold the row's evidence (in its source, when it names one)."""
    found = {i for i, p in enumerate(passages)
             if (row.source is None or Path(p.source).name == row.source)
             and any(_normal(e) in _normal(p.text) for e in row.evidence)}
    if not found:
        raise ConfigError(f"{path}:{row.line}: no {holder} contains the evidence {list(row.evidence)}; "
                          "fix the evidence or add the source")
    return found


def retrieval_methods(search: SearchBackend) -> tuple[str, ...]:
    """A notebook compares its retrievers (bm25, dense, hybrid); any other backend is measured as it searches."""
    return tuple(getattr(search, "methods", ("search",)))


def _ranking(search: SearchBackend, question: str, method: str, index: dict[tuple, int]) -> list[int]:
    if method != "search" and callable(getattr(search, "rank", None)):
        return [i for i, _ in search.rank(question, method, DEPTH)]
    found = (index.get((p.source, p.start, p.end)) for p in search.search(question, DEPTH))
    return [i for i in found if i is not None]


def retrieval_metrics(search: SearchBackend, rows: list[QARow], path: Path, methods=None,
                      progress=None) -> dict[str, dict[str, float]]:
    """Mean recall@1/5/10, MRR and nDCG@10 per method over the answerable rows."""
    passages = all_passages(search, "a retrieval evaluation")
    index = {(p.source, p.start, p.end): i for i, p in enumerate(passages)}
    answerable = [r for r in rows if r.answerable]
    holder = (f"chunk of notebook '{display_name(search)}'" if search.name.startswith("notebook:")
              else f"passage of '{search.name}'")
    relevant = [relevant_chunks(passages, r, path, holder) for r in answerable]
    results = {}
    for method in methods or retrieval_methods(search):
        totals = {f"recall@{k}": 0.0 for k in RECALL_KS} | {"mrr": 0.0, "ndcg@10": 0.0}
        for row, wanted in zip(answerable, relevant):
            ranking = _ranking(search, row.question, method, index)
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


def end_to_end(model, search: SearchBackend, rows: list[QARow], *, judge=None, method: str = "lexical",
               k: int = 4, shown: int | None = None, quote: bool = True, progress=None) -> dict:
    """Answer every question; report groundedness, abstentions and answers containing the reference.
    ``k`` passages are retrieved for the gates and ``shown`` (default answer.SHOWN) shown the model.
    A quote (``ask``'s, in place of a draft that cites nothing) is grounded by construction, so
    the share of answers that are quotes is reported beside the groundedness figures."""
    from genlab.ground.answer import SHOWN, ask
    from genlab.ground.check import check_groundedness

    per_row, fractions, precisions = [], [], []
    for row in rows:
        answer = ask(model, search, row.question, k=k, shown=SHOWN if shown is None else shown, quote=quote)
        report = check_groundedness(answer, judge, method)
        if report.supported_fraction is not None:
            fractions.append(report.supported_fraction)
        if report.citation_precision is not None:
            precisions.append(report.citation_precision)
        contains = _normal(row.answer) in _normal(answer.answer) if row.answer else None
        per_row.append({"question": row.question, "answerable": row.answerable, "answer": answer.answer,
                        "abstained": answer.abstained, "quoted": answer.draft is not None,
                        "contains_reference": contains, **report.to_dict()})
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
        "quoted": _mean([r["quoted"] for r in per_row if not r["abstained"]]),
        "answer_contains_reference": _mean([r["contains_reference"] for r in with_reference]),
        "rows": per_row,
    }


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None
