"""Gecko-style embedding distillation (`genlab distill embeddings`), after Lee et al. 2024 (FRet):

1. an LLM reads each passage and writes a retrieval task and a query for it (JSON schema);
2. the current embedder retrieves the top ``candidates`` passages for the query;
3. the LLM picks the candidate that best answers the query (enum mode over their
   numbers): that is the positive, which need not be the passage the query came from;
   the lowest-ranked other candidate is the hard negative;
4. all-MiniLM-L6-v2 is fine-tuned on (query, positive, hard negative) with
   sentence-transformers' multiple-negatives ranking loss (in-batch negatives too).

Held-out passages get queries the same way (never trained on); recall@10 and nDCG@10 of
finding each one's own passage among all passages are reported before and after. The
result is a sentence-transformers folder: `genlab notebook create NAME --embedder DIR`.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np

from genlab.errors import ConfigError, ModelError

QUERY_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["task", "query"],
                "properties": {"task": {"type": "string", "maxLength": 120},
                               "query": {"type": "string", "minLength": 3, "maxLength": 160}}}
QUERY_PROMPT = """Passage:
{passage}

Write a retrieval task that this passage would serve (for example "Given a question, find the \
passage that answers it") and a search query a person might type for which this passage is the answer."""
PICK_PROMPT = """Query: {query}

Which passage answers the query best?

{candidates}

Answer with the passage's number."""
HELD_OUT = 0.2


def passages_from(source: str) -> list[str]:
    """Chunk texts of a notebook (by name) or of the files under a folder."""
    path = Path(source)
    if path.exists():
        from genlab.ground.notebook import expand_paths
        from genlab.ground.sources import chunk_document, read_source

        return [c.text for f in expand_paths([path]) for c in chunk_document(read_source(f))]
    from genlab.ground.notebook import Notebook

    return [c.text for c in Notebook.open(source).chunks()[0]]


def write_query(teacher, passage: str) -> dict | None:
    fmt = {"type": "json_schema", "json_schema": {"name": "query", "schema": QUERY_SCHEMA, "strict": True}}
    try:
        data = teacher.chat(QUERY_PROMPT.format(passage=passage), temperature=0, max_tokens=160,
                            response_format=fmt, cache=True).json()
    except (ModelError, ValueError):
        return None
    return data if data.get("query", "").strip() else None


def pick_positive(teacher, query: str, candidates: list[str]) -> int:
    numbered = "\n\n".join(f"[{i}] {' '.join(c.split())[:500]}" for i, c in enumerate(candidates, 1))
    labels = [str(i) for i in range(1, len(candidates) + 1)]
    answer = teacher.chat(PICK_PROMPT.format(query=query, candidates=numbered), temperature=0, max_tokens=4,
                          response_format={"type": "enum", "enum": labels}, cache=True).text.strip()
    return int(answer) - 1


def retrieval_scores(model, queries: list[str], relevant: list[int], passages: list[str], k: int = 10) -> dict:
    """recall@k and nDCG@k of finding each query's one relevant passage."""
    passage_vectors = model.encode(passages, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    query_vectors = model.encode(queries, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    ranks = np.argsort(-(query_vectors @ passage_vectors.T), axis=1)[:, :k]          # (queries, k)
    recall, ndcg = 0.0, 0.0
    for row, target in zip(ranks, relevant):
        hits = np.where(row == target)[0]
        if hits.size:
            recall += 1
            ndcg += 1 / math.log2(int(hits[0]) + 2)
    return {f"recall@{k}": recall / len(queries), f"ndcg@{k}": ndcg / len(queries)}


def distill_embeddings(source: str, teacher_spec: str, output: Path, *, base: str | None = None,
                       max_passages: int = 300, candidates: int = 5, max_steps: int | None = None,
                       epochs: int = 1, batch_size: int = 16, learning_rate: float = 2e-5, seed: int = 0,
                       resume: bool = False, progress=None) -> dict:
    from genlab.ground.embed import resolve_embedder
    from genlab.models import get_model
    from genlab.torch_setup import prepare_torch

    if output.exists() and (output / "gecko-summary.json").exists() and not resume:
        raise ConfigError(f"{output} already holds a distilled embedder; choose another --output")
    passages = list(dict.fromkeys(passages_from(source)))
    if len(passages) < 10:
        raise ConfigError(f"{source} has {len(passages)} distinct passages; Gecko-style distillation needs at least 10")
    rng = random.Random(seed)
    if len(passages) > max_passages:
        passages = rng.sample(passages, max_passages)
    order = list(range(len(passages)))
    rng.shuffle(order)
    held_count = max(2, round(HELD_OUT * len(passages)))
    held = set(order[:held_count])      # passages whose queries are only ever evaluated on

    prepare_torch()
    from sentence_transformers import SentenceTransformer

    _, base_path = resolve_embedder(base)
    model = SentenceTransformer(str(base_path), device="cpu", local_files_only=True)
    teacher = get_model(teacher_spec, source="distill")
    started = time.monotonic()

    # Steps 1-3, saved as they go so an interrupted run keeps the teacher's work.
    output.mkdir(parents=True, exist_ok=True)
    mined_file = output / "gecko-data.jsonl"
    mined = {}
    if resume and mined_file.exists():
        mined = {r["passage"]: r for r in map(json.loads, mined_file.read_text().splitlines())}
    vectors = model.encode(passages, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    with open(mined_file, "a", encoding="utf-8") as handle:
        for done, index in enumerate(order, 1):
            if index in mined:
                continue
            written = write_query(teacher, passages[index])
            record = {"passage": index, "held_out": index in held, "query": written and written["query"],
                      "task": written and written["task"]}
            if written and index not in held:
                query_vector = model.encode([written["query"]], normalize_embeddings=True, convert_to_numpy=True)[0]
                top = [int(i) for i in np.argsort(-(vectors @ query_vector))[:candidates]]
                picked = top[pick_positive(teacher, written["query"], [passages[i] for i in top])]
                negatives = [i for i in top if i != picked]
                record |= {"candidates": top, "positive": picked, "negative": negatives[-1] if negatives else None}
            mined[index] = record
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            if progress:
                progress(done, len(order))
    mining_s = time.monotonic() - started

    triples = [r for r in mined.values() if not r["held_out"] and r.get("positive") is not None
               and r.get("negative") is not None]
    evaluation = [(r["query"], r["passage"]) for r in mined.values() if r["held_out"] and r["query"]]
    if len(triples) < 4 or len(evaluation) < 2:
        raise ConfigError(f"the teacher gave {len(triples)} training triples and {len(evaluation)} held-out queries; "
                          "need at least 4 and 2 (use more passages or a stronger --teacher)")
    queries, relevant = [q for q, _ in evaluation], [p for _, p in evaluation]
    before = retrieval_scores(model, queries, relevant, passages)

    # Step 4: contrastive fine-tuning.
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses

    dataset = Dataset.from_dict({"anchor": [r["query"] for r in triples],
                                 "positive": [passages[r["positive"]] for r in triples],
                                 "negative": [passages[r["negative"]] for r in triples]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output / "checkpoints"), num_train_epochs=epochs, max_steps=max_steps or -1,
        per_device_train_batch_size=batch_size, learning_rate=learning_rate, use_cpu=True, report_to="none",
        logging_steps=1, save_strategy="no", seed=seed, dataloader_num_workers=0)
    losses_seen: list[float] = []
    from genlab.train.trainer import TrainOptions, callbacks

    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                         loss=losses.MultipleNegativesRankingLoss(model),
                                         callbacks=callbacks(TrainOptions(output=output), losses_seen))
    train_started = time.monotonic()
    trainer.train()
    train_s = time.monotonic() - train_started
    model.save(str(output))
    after = retrieval_scores(model, queries, relevant, passages)
    summary = {
        "method": "distill-embeddings", "source": source, "teacher": teacher_spec, "passages": len(passages),
        "training_triples": len(triples), "held_out_queries": len(evaluation),
        "positive_is_not_seed": sum(r["positive"] != r["passage"] for r in triples) / len(triples),
        "query_failures": sum(not r["query"] for r in mined.values()),
        "before": before, "after": after, "steps": trainer.state.global_step, "losses": losses_seen,
        "mining_seconds": round(mining_s, 1), "training_seconds": round(train_s, 1),
    }
    (output / "gecko-summary.json").write_text(json.dumps(summary, indent=2))
    return summary
