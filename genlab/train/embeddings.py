"""Gecko-style embedding distillation (`genlab distill embeddings`), after Lee et al. 2024 (FRet):

1. an LLM reads each sampled passage and writes a question it answers (Gecko asks for a task
   and a query in JSON; see QUERY_PROMPT for why genlab asks for a plain question);
2. the current embedder retrieves the top ``candidates`` passages of the whole corpus for it;
3. the LLM picks the candidate that best answers the query (enum mode over their numbers),
   in the embedder's order, reversed, and turned by one (see `orders`). A pick that
   survives every reordering is the positive, which need not be the passage the query came
   from; one that does not is a position, not a judgment (the embedded model answers [2] or
   [4] whatever they hold), and the query's own passage is kept instead. The lowest-ranked
   other candidate is the hard negative.
   ``positive="seed"`` skips the picks and always keeps the query's own passage;
4. all-MiniLM-L6-v2 is fine-tuned on (query, positive, hard negative) with
   sentence-transformers' multiple-negatives ranking loss (in-batch negatives too).

Held-out passages get queries the same way (never trained on). Before and after training,
the embedder ranks every passage of the corpus for each held-out query, and for each
question of an optional human-written QA file (genlab's QA format: relevance by evidence);
recall@1/5/10, MRR and nDCG@10 come from the notebook evaluation's own code. The result is
a sentence-transformers folder: `genlab notebook create NAME --embedder DIR`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genlab.errors import ConfigError, ModelError
from genlab.io import HOLD_FILE, append_jsonl, hold_folder, require_empty_folder, resume_jsonl
from genlab.ground.passage import Passage
from genlab.train.trainer import TrainOptions, callbacks, disk_space_for, quiet

#: A plain question, not Gecko's JSON {task, query}: asked for JSON, the embedded model wrote
#: identifiers ("find_passage_by_query_by_id_...") for most passages; asked for a question, it
#: wrote questions its passage answers (on 30 development chunks of the bench corpus, MiniLM
#: found the chunk in its top 10 for 67 % of them, against 17 % with the JSON prompt).
QUERY_PROMPT = """Passage:
{passage}

Write one question that a reader could answer from this passage. Reply with the question only."""
PICK_PROMPT = """Query: {query}

Which passage answers the query best?

{candidates}

Answer with the passage's number."""
HELD_OUT = 0.2


POSITIVES = ("llm", "seed")
SUMMARY_FILE = "gecko-summary.json"
MINED_FILE = "gecko-data.jsonl"         # the teacher's queries and picks, a row per passage


@dataclass(frozen=True)
class TeacherPicks:
    """How the teacher picked positives (step 3): shares of the queries it was asked about."""

    queries: int
    consistent: float                  # the same passage picked in every order
    same_position: float               # the same shown position picked in every order asked
    seed_among_candidates: float       # the query's own passage was among the candidates
    consistent_pick_is_seed_when_shown: float | None


@dataclass(frozen=True)
class PairedTop10:
    """Queries whose passage is in the top 10 only after tuning, only before, and McNemar's exact p."""

    found_only_after: int
    found_only_before: int
    p_value: float


@dataclass(frozen=True)
class HeldOutRetrieval:
    """One set of held-out queries, ranked over the whole corpus before and after tuning."""

    queries: int
    file: str
    before: dict[str, float]           # recall@1/5/10, mrr, ndcg@10
    after: dict[str, float]
    paired_top10: PairedTop10


@dataclass(frozen=True)
class GeckoResult:
    """What `genlab distill embeddings` did and measured; saved beside the embedder as SUMMARY_FILE."""

    source: str
    teacher: str
    positive: str
    corpus_passages: int
    mined_passages: int                # passages the teacher wrote a query for
    training_triples: int
    query_failures: int
    teacher_picks: TeacherPicks | None   # None with positive="seed"
    held_out: dict[str, HeldOutRetrieval]   # "llm" (the teacher's queries of held-out passages), "human"
    steps: int
    losses: list[float]
    mining_seconds: float
    training_seconds: float
    method: str = "distill-embeddings"

    def save(self, output: Path) -> "GeckoResult":
        (output / SUMMARY_FILE).write_text(json.dumps(asdict(self), indent=2))
        return self


def passages_from(source: str) -> list[Passage]:
    """The distinct chunks of a notebook (by name) or of the files under a folder, in source order."""
    path = Path(source)
    if path.exists():
        from genlab.ground.notebook import expand_paths
        from genlab.ground.sources import chunk_document, read_source

        found = []
        for file in expand_paths([path]):
            document = read_source(file)
            found += [Passage(c.text, str(file), document.title, c.page, c.start, c.end)
                      for c in chunk_document(document)]
    else:
        from genlab.ground.notebook import Notebook
        from genlab.ground.retrieval import NotebookSearch

        found = NotebookSearch(Notebook.open(source)).passages()
    distinct = {}
    for passage in found:
        distinct.setdefault(passage.text, passage)
    return list(distinct.values())


class EmbedderIndex:
    """Every passage ranked by one embedder's cosine: a search backend for the evaluation's metrics."""

    methods = ("dense",)

    def __init__(self, model, passages: list[Passage]):
        self.name, self.model, self._passages = "embedder", model, passages
        self.vectors = model.encode([p.text for p in passages], normalize_embeddings=True, convert_to_numpy=True,
                                    batch_size=64)

    def passages(self) -> list[Passage]:
        return self._passages

    def rank(self, query: str, method: str, k: int) -> list[tuple[int, float]]:
        scores = self.vectors @ self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        top = np.argsort(-scores)[:k]
        return [(int(i), float(scores[i])) for i in top]

    def search(self, query: str, k: int) -> list[Passage]:
        return [self._passages[i] for i, _ in self.rank(query, "dense", k)]


def write_query(teacher, passage: str) -> str | None:
    """The teacher's question for one passage: the first line of its reply, or None."""
    try:
        reply = teacher.chat(QUERY_PROMPT.format(passage=passage), temperature=0, max_tokens=48, cache=True).text
    except ModelError:
        return None
    lines = reply.strip().splitlines()
    question = lines[0].strip() if lines else ""
    return question if len(question) >= 3 else None


def pick_positive(teacher, query: str, candidates: list[str]) -> int:
    numbered = "\n\n".join(f"[{i}] {' '.join(c.split())[:500]}" for i, c in enumerate(candidates, 1))
    labels = [str(i) for i in range(1, len(candidates) + 1)]
    answer = teacher.chat(PICK_PROMPT.format(query=query, candidates=numbered), temperature=0, max_tokens=4,
                          response_format={"type": "enum", "enum": labels}, cache=True).text.strip()
    return int(answer) - 1


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def orders(top: list[int]) -> list[list[int]]:
    """The candidates as the teacher is shown them: in the embedder's order, reversed, and
    turned by one (the first shown last). Reversal alone lets a teacher that answers by
    position through, as it maps the 2nd of 5 onto the 4th: the embedded model answers [2] or
    [4] whatever they hold (the same position in both orders for 90 of 199 queries of
    `bench/tune_distill.py gecko`), and 41 of the 52 picks that survived the reversal there were
    [2] in one order and [4] in the other. Turned by one, no position shows the passage it
    showed first, so a teacher must change position to agree."""
    return [top, top[::-1], top[1:] + top[:1]]


def pick(teacher, query: str, top: list[int], passages: list[Passage]) -> dict:
    """The teacher's pick in each of `orders`, stopping at the first that differs from the
    first (the rest cannot make it consistent); ``pick`` is None unless all agree."""
    picks = []
    for shown in orders(top):
        picks.append(shown[pick_positive(teacher, query, [passages[i].text for i in shown])])
        if picks[-1] != picks[0]:
            return {"picks": picks, "pick": None}
    return {"picks": picks, "pick": picks[0]}


def triple(record: dict, positive: str) -> tuple[str, int, int] | None:
    """(query, positive passage, hard negative) from one mined record, or None."""
    if record["held_out"] or not record.get("query") or not record.get("candidates"):
        return None
    chosen = record.get("pick") if positive == "llm" else None
    chosen = record["passage"] if chosen is None else chosen
    others = [i for i in record["candidates"] if i != chosen]
    return (record["query"], chosen, others[-1]) if others else None


def pick_stats(records: list[dict]) -> TeacherPicks | None:
    """How the teacher picked: how often its pick survived every reordering of the candidates,
    how often it was the same shown position in every order asked, and how often the query's
    own passage when it was shown."""
    asked = [r for r in records if r.get("picks")]
    if not asked:
        return None
    kept = [r for r in asked if r["pick"] is not None]
    seed_shown = [r for r in kept if r["passage"] in r["candidates"]]
    return TeacherPicks(
        queries=len(asked), consistent=len(kept) / len(asked),
        same_position=sum(len({shown.index(p) for p, shown in zip(r["picks"], orders(r["candidates"]))}) == 1
                          for r in asked) / len(asked),
        seed_among_candidates=sum(r["passage"] in r["candidates"] for r in asked) / len(asked),
        consistent_pick_is_seed_when_shown=(sum(r["pick"] == r["passage"] for r in seed_shown) / len(seed_shown)
                                            if seed_shown else None))


def evaluate(index: EmbedderIndex, query_sets: dict) -> dict:
    """recall@1/5/10, MRR and nDCG@10 of the embedder on each set of held-out queries, and
    for each query whether a relevant passage is in its top 10 (for the paired comparison)."""
    from genlab.ground.evaluation import relevant_chunks, retrieval_metrics

    results = {}
    for name, (rows, path) in query_sets.items():
        results[name] = retrieval_metrics(index, rows, path, methods=("dense",))["dense"]
        results[name]["found_in_top10"] = [
            bool(relevant_chunks(index.passages(), row, path, "passage") & {i for i, _ in index.rank(row.question, "dense", 10)})
            for row in rows]
    return results


def paired_top10(before: list[bool], after: list[bool]) -> PairedTop10:
    """Queries found in the top 10 only after tuning, only before, and the exact McNemar p-value
    (two-sided binomial test on those discordant queries): is the change more than chance?"""
    from scipy.stats import binomtest

    gained = sum(a and not b for b, a in zip(before, after))
    lost = sum(b and not a for b, a in zip(before, after))
    return PairedTop10(gained, lost, float(binomtest(gained, gained + lost).pvalue) if gained + lost else 1.0)


def _refuse_earlier_work(output: Path) -> None:
    if (output / SUMMARY_FILE).exists():
        raise ConfigError(f"{output} already holds a distilled embedder; choose another --output")
    if (output / MINED_FILE).exists():
        raise ConfigError(f"{output} holds an interrupted distillation; pass --resume to keep the teacher's "
                          "queries and continue it, or choose another --output")
    require_empty_folder(output, "--output", "the tuned embedder", own=(HOLD_FILE,))


def distill_embeddings(source: str, teacher_spec: str, output: Path, *, base: str | None = None,
                       max_passages: int = 300, candidates: int = 5, positive: str = "llm",
                       held_out: Path | None = None, max_steps: int | None = None, epochs: int = 1,
                       batch_size: int = 16, learning_rate: float = 2e-5, seed: int = 0, resume: bool = False,
                       progress=None) -> GeckoResult:
    from genlab.ground.embed import resolve_embedder
    from genlab.ground.evaluation import QARow, load_qa, relevant_chunks
    from genlab.models import get_model
    from genlab.torch_setup import prepare_torch

    if positive not in POSITIVES:
        raise ConfigError(f"--positive must be one of {', '.join(POSITIVES)}, not {positive!r}")
    if not learning_rate > 0:
        raise ConfigError(f"--lr must be more than 0 (got {learning_rate:g})")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file; give a folder for the tuned embedder")
    if not resume:
        _refuse_earlier_work(output)
    passages = passages_from(source)
    if len(passages) < 10:
        raise ConfigError(f"{source} has {len(passages)} distinct passages; Gecko-style distillation needs at least 10")
    human = []
    if held_out is not None:       # checked before any model work: evidence must be in the corpus
        human = [r for r in load_qa(held_out) if r.answerable]
        for row in human:
            relevant_chunks(passages, row, held_out, f"passage of {source}")
    rng = random.Random(seed)
    order = list(range(len(passages)))
    rng.shuffle(order)
    order = order[:max_passages]            # the passages the teacher writes queries for
    held = set(order[:max(2, round(HELD_OUT * len(order)))])      # their queries are only ever evaluated on

    prepare_torch()
    from sentence_transformers import SentenceTransformer

    _, base_path = resolve_embedder(base)
    model = SentenceTransformer(str(base_path), device="cpu", local_files_only=True)
    teacher = get_model(teacher_spec, source="distill")
    started = time.monotonic()

    # Steps 1-3, saved as they go so an interrupted run keeps the teacher's work. A record
    # counts only for the passage text it was written for (the corpus may have changed).
    output.mkdir(parents=True, exist_ok=True)
    # Held from here: a second distillation into the folder is refused, not mixed with this one.
    with hold_folder(output, "distils an embedder"), disk_space_for(output, (output / MINED_FILE).exists):
        if not resume:
            _refuse_earlier_work(output)   # again, now that it is held: another may have worked here since
        mined_file = output / MINED_FILE
        mined = {}
        if resume:
            for _, record in resume_jsonl(mined_file):
                number = record["passage"]
                if (number < len(passages) and record.get("text") == fingerprint(passages[number].text)
                        and record["held_out"] == (number in held)):
                    mined[number] = record
        index = EmbedderIndex(model, passages)
        for done, number in enumerate(order, 1):
            record = mined.get(number)
            needs_pick = (positive == "llm" and record is not None and record.get("candidates")
                          and "picks" not in record)
            if record is not None and not needs_pick:
                continue
            if record is None:
                written = write_query(teacher, passages[number].text)
                record = {"passage": number, "text": fingerprint(passages[number].text), "held_out": number in held,
                          "query": written}
                if written and number not in held:
                    record["candidates"] = [i for i, _ in index.rank(written, "dense", candidates)]
            if positive == "llm" and record.get("candidates"):
                record |= pick(teacher, record["query"], record["candidates"], passages)
            mined[number] = record
            append_jsonl(mined_file, record)
            if progress:
                progress(done, len(order))
        mining_s = time.monotonic() - started

        records = [mined[n] for n in order if n in mined]
        triples = [t for t in (triple(r, positive) for r in records) if t]
        llm_rows = [QARow(r["passage"], r["query"], (passages[r["passage"]].text,),
                          Path(passages[r["passage"]].source).name, None, True)
                    for r in records if r["held_out"] and r["query"]]
        if len(triples) < 4 or len(llm_rows) < 2:
            raise ConfigError(f"the teacher gave {len(triples)} training triples and {len(llm_rows)} held-out queries; "
                              "need at least 4 and 2 (use more passages or a stronger --teacher)")
        query_sets = {"llm": (llm_rows, mined_file)} | ({"human": (human, held_out)} if human else {})
        before = evaluate(index, query_sets)

        # Step 4: contrastive fine-tuning.
        from datasets import Dataset
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses

        dataset = Dataset.from_dict({"anchor": [q for q, _, _ in triples],
                                     "positive": [passages[p].text for _, p, _ in triples],
                                     "negative": [passages[n].text for _, _, n in triples]})
        args = SentenceTransformerTrainingArguments(
            output_dir=str(output / "checkpoints"), num_train_epochs=epochs, max_steps=max_steps or -1,
            per_device_train_batch_size=batch_size, learning_rate=learning_rate, use_cpu=True, report_to="none",
            logging_steps=1, save_strategy="no", seed=seed, dataloader_num_workers=0)
        losses_seen: list[float] = []

        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                             loss=losses.MultipleNegativesRankingLoss(model),
                                             callbacks=callbacks(TrainOptions(output=output), losses_seen))
        quiet(trainer)
        train_started = time.monotonic()
        trainer.train()
        train_s = time.monotonic() - train_started
        model.save(str(output))
        after = evaluate(EmbedderIndex(model, passages), query_sets)
        return GeckoResult(
            source=source, teacher=teacher_spec, positive=positive, corpus_passages=len(passages),
            mined_passages=len(order), training_triples=len(triples),
            query_failures=sum(not r["query"] for r in records), teacher_picks=pick_stats(records),
            held_out={name: HeldOutRetrieval(len(rows), str(path), before[name], after[name],
                                             paired_top10(before[name].pop("found_in_top10"),
                                                          after[name].pop("found_in_top10")))
                      for name, (rows, path) in query_sets.items()},
            steps=trainer.state.global_step, losses=losses_seen,
            mining_seconds=round(mining_s, 1), training_seconds=round(train_s, 1)).save(output)
