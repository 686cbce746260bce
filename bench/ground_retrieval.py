"""Notebook indexing throughput, query latency and retrieval quality.

Corpus: the example notebook (examples/notebook/velmora, 5 sources) plus distractors
written from the docstrings of Python's standard library (public, on every machine)
until the notebook holds about TARGET_CHUNKS chunks. The QA set
(examples/notebook/velmora-qa.jsonl, written for genlab) asks about the Velmora sources
only, so the distractors make retrieval find a needle in a few thousand chunks.

Prints and writes bench/results/ground_retrieval.json:
  * indexing: chunks/s for read+chunk+embed+write (embedder loaded beforehand), and the
    embedding share of it;
  * query latency per retriever (median, p95, ms; ranking only, query embedding included
    for dense and hybrid), with BM25 as the baseline;
  * recall@1/5/10, MRR, nDCG@10 per retriever, with and without distractors;
  * the best passage's cosine for covered vs off-topic questions (the abstention gate).
"""

from __future__ import annotations

import ast
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import median, write  # noqa: E402

TARGET_CHUNKS = 3000
VELMORA = ROOT / "examples" / "notebook" / "velmora"
QA = VELMORA.parent / "velmora-qa.jsonl"


def write_distractors(folder: Path, chars: int) -> int:
    """Write stdlib docstrings into text files until about ``chars`` characters; return files written."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    written, files = 0, 0
    for path in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if "test" in path.parts or "idlelib" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        docs = [ast.get_docstring(node) for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        text = "\n\n".join(d for d in docs if d and len(d) > 80)
        if len(text) < 500:
            continue
        (folder / f"{path.parent.name}-{path.stem}.txt").write_text(text)
        written += len(text)
        files += 1
        if written >= chars:
            break
    return files


def main() -> None:
    os.environ["GENLAB_HOME"] = tempfile.mkdtemp(prefix="genlab-bench-")
    from genlab.ground.embed import load_embedder
    from genlab.ground.evaluation import end_to_end, load_qa, retrieval_metrics
    from genlab.ground.notebook import Notebook
    from genlab.ground.retrieval import METHODS, NotebookSearch

    started = time.perf_counter()
    embedder = load_embedder()
    load_s = time.perf_counter() - started
    rows = load_qa(QA)

    # 1. Small notebook: the five Velmora sources alone.
    small = Notebook.create("velmora")
    small.add([VELMORA])
    small_metrics = retrieval_metrics(NotebookSearch(small), rows, QA)

    # 2. The same sources among a few thousand distractor chunks.
    distractors = Path(tempfile.mkdtemp(prefix="genlab-distractors-"))
    files = write_distractors(distractors, chars=TARGET_CHUNKS * 600)
    big = Notebook.create("velmora-big")
    big.add([VELMORA])
    timings = {}
    started = time.perf_counter()
    original_encode = embedder.encode

    def timed_encode(texts, progress=None):
        t = time.perf_counter()
        result = original_encode(texts, progress)
        timings["embed_s"] = timings.get("embed_s", 0) + time.perf_counter() - t
        return result
    embedder.encode = timed_encode
    report = big.add([distractors])
    embedder.encode = original_encode
    index_s = time.perf_counter() - started
    chunks = big.chunk_count()
    print(f"indexed {report.chunks} chunks from {files} files in {index_s:.1f} s: "
          f"{report.chunks / index_s:.0f} chunks/s ({100 * timings['embed_s'] / index_s:.0f} % embedding); "
          f"embedder load {load_s:.1f} s")

    search = NotebookSearch(big)
    started = time.perf_counter()
    search.rank("warm up", "bm25", 5)
    bm25_build_s = time.perf_counter() - started
    latency = {}
    questions = [r.question for r in rows]
    for method in METHODS:
        times = []
        for question in questions * 3:
            t = time.perf_counter()
            search.rank(question, method, 5)
            times.append(1000 * (time.perf_counter() - t))
        latency[method] = {"median_ms": median(times), "p95_ms": statistics.quantiles(times, n=20)[-1]}
    base = latency["bm25"]["median_ms"]
    for method, figures in latency.items():
        print(f"{method:>6}: median {figures['median_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms "
              f"(×{figures['median_ms'] / base:.2f} of bm25)")
    print(f"BM25 index build on first query: {bm25_build_s:.2f} s for {chunks} chunks")

    big_metrics = retrieval_metrics(search, rows, QA)
    for label, metrics in (("5 sources", small_metrics), (f"{chunks} chunks", big_metrics)):
        for method, m in metrics.items():
            print(f"{label:>12} {method:>6}: recall@1 {m['recall@1']:.3f}  recall@5 {m['recall@5']:.3f}  "
                  f"recall@10 {m['recall@10']:.3f}  MRR {m['mrr']:.3f}  nDCG@10 {m['ndcg@10']:.3f}")

    gate = {"answerable": [], "unanswerable": []}
    for row in rows:
        best = max((p.similarity for p in search.search(row.question, 4)), default=0.0)
        gate["answerable" if row.answerable else "unanswerable"].append(best)
    print(f"best-passage cosine: answerable {min(gate['answerable']):.2f}–{max(gate['answerable']):.2f}, "
          f"off-topic {min(gate['unanswerable']):.2f}–{max(gate['unanswerable']):.2f}")

    from genlab.models import get_model

    model = get_model("local", source="bench")
    started = time.perf_counter()
    # The model's own drafts: a quote in place of one that cites nothing would be supported by
    # construction and say nothing of the model (bench/ground_hard.py measures the quote).
    e2e = end_to_end(model, NotebookSearch(small), rows, quote=False)
    e2e_s = time.perf_counter() - started
    print(f"end to end on the embedded model ({len(rows)} questions, {e2e_s:.0f} s): claims supported "
          f"{e2e['supported_fraction']:.2f}, citation precision {e2e['citation_precision']:.2f}, answer contains "
          f"reference {e2e['answer_contains_reference']:.2f}, abstained {e2e['abstained_when_answerable']:.2f} of "
          f"answerable / {e2e['abstained_when_unanswerable']:.2f} of off-topic")
    e2e.pop("rows")
    write("ground_retrieval", {
        "corpus": {"chunks": chunks, "distractor_files": files, "velmora_sources": 5},
        "indexing": {"chunks": report.chunks, "seconds": index_s, "chunks_per_s": report.chunks / index_s,
                     "embedding_share": timings["embed_s"] / index_s, "embedder_load_s": load_s,
                     "bm25_build_s": bm25_build_s},
        "query_latency_ms": latency,
        "retrieval_small": small_metrics,
        "retrieval_with_distractors": big_metrics,
        "gate_cosine": {k: {"min": min(v), "max": max(v)} for k, v in gate.items()},
        "end_to_end_local": {**e2e, "seconds": e2e_s},
    })


if __name__ == "__main__":
    main()
