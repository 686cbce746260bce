"""Grounding on look-alike documents: retrieval, attribution and abstention, today's pipeline
against genlab's, on examples/notebook/pyref (60 pages of the Python language reference).

The QA set (examples/notebook/pyref-qa.jsonl, written for genlab) has 180 questions: 140
answerable, each with the passage text that answers it (``evidence``), its page
(``source``) and a one-sentence gold answer (``gold``); many name one statement or operator
and share their words with its neighbours ("the else clause of a while loop" against the
for, try and if pages). 40 are on the reference's topic but not answered by it. Each
question carries its half: ``dev`` for choosing settings, ``heldout`` for the README.

    today    hybrid retrieval (BM25 + chunk cosine), the cosine gate (0.35) alone, all 4
             passages found shown to the model, and attribution of marker-less sentences
             by cosine with a passage line (>= 0.6)
    genlab   reranked retrieval (hybrid candidates re-fused with their best sentence's
             cosine), the cosine gate and the coverage gate over the 4 found, the first 2
             shown to the model (answer.SHOWN), attribution by words first, and a draft
             that cites nothing replaced by the closest sentence, quoted (answer.quote_if_uncited)

Measured, per half:
  1. retrieval: the right passage first (hit@1) and among the 4 found (hit@4), the right
     page first (doc@1), per method; the embedded model as an enum-mode reranker (dev only);
  2. query latency (search + gates, no answer), median and p95, per method;
  3. attribution of the gold sentences to the passages shown: precision (the passage
     chosen holds the evidence) and recall (of the questions whose evidence was shown);
  4. abstention before any model call: recall on unanswered questions, false abstentions on
     answerable ones, precision (the share of refused questions that are unanswered); on
     dev, the coverage threshold that the shipped default came from, and the same choice
     with the unseen-word rule made lenient with words close in meaning;
  5. end to end on held-out, embedded model: the right page among the cited ones, the
     reference answer in the text, abstention;
  6. on dev, every question answered (both gates off): how many passages to show the model
     (the shipped SHOWN), the answer length (the shipped ANSWER_TOKENS, against 300
     tokens), how often the right page can be cited at all, and whether refusing drafts
     that no shown passage backs would help the gates;
  7. on dev, the shipped answers (gates off) with and without the quote in place of a draft
     that cites nothing (quote_dev); and the same comparison end to end, gates on, on the
     example notebook's QA set (velmora, 43 questions), which chose nothing (quote_velmora);
  8. on dev, retrieval and abstention with MiniLM tuned on pyref Gecko-style (the embedded
     model writes a question for each of 300 sampled chunks; `genlab distill embeddings
     pyref --positive seed`), against MiniLM as shipped (gecko_dev);
  9. on dev, the embedded model's likelihood of the question as an abstention signal
     (likelihood_dev): how much more likely it finds the question after a found passage
     than after none (UPR's question-generation score), against the gates' own features.
  10. on dev, page titles named in the question as a third list in the reranked fusion
     (titles_dev), against the shipped ranking.
  11. on dev, every signal retrieval gives (cosines, the reranked score, coverage by passage,
     by the 4 together, by sentence and by two sentences, unseen words), alone and combined
     by a cross-validated logistic regression, as abstention signals (signals_dev).

Rates carry 95 % Wilson intervals. Writes bench/results/ground_hard.json. About 100 minutes
on 2 cores (end to end 20 of them, dev answers 50, the two quote sections 10, gecko_dev 7, likelihood_dev 4); ``python bench/ground_hard.py latency attribution``
runs the sections named and keeps the others' last results; ``--model SPEC`` asks another
model (results in ground_hard-SPEC.json). GENLAB_HOME may name a folder to keep the
notebook and model cache between runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import median, rate, write  # noqa: E402

PYREF = ROOT / "examples" / "notebook" / "pyref"
QA = PYREF.parent / "pyref-qa.jsonl"
VELMORA = PYREF.parent / "velmora"
RETRIEVED = 4              # passages found for each question (answer.DEFAULT_K); the gates read them all
SHOWN_GRID = (1, 2, 3, 4)  # passages the model is shown, tried on dev (answer.SHOWN came from it)
RERANK_CANDIDATES = 8      # for the model as reranker
COVERAGE_GRID = [round(0.40 + 0.05 * i, 2) for i in range(10)]
SYNONYM_GRID = [round(0.60 + 0.05 * i, 2) for i in range(7)]   # cosine that makes an unseen word seen
MAX_FALSE_ABSTENTIONS = 0.10
SECTIONS = ("retrieval", "latency", "attribution", "abstention", "rerank", "end_to_end", "dev_answers", "quote_dev",
            "quote_velmora", "gecko_dev", "likelihood_dev", "titles_dev", "signals_dev")
#: UPR's prompt (Sachan et al. 2022): the question as what the passage makes likely, against no passage.
QUESTION_PROMPT = "Write a question that this passage answers.\n\n{passage}"
NO_PASSAGE_PROMPT = "Write a question about Python."
LONG_ANSWER = 300          # tokens: what answers were cut at before ANSWER_TOKENS


def load_rows() -> list[dict]:
    from genlab.ground.evaluation import load_qa

    rows = load_qa(QA)            # checks every line (and that answerable ones have evidence)
    return [{**json.loads(line), "row": row} for line, row in zip(QA.read_text().splitlines(), rows)]


def right_page(passage, row) -> bool:
    return Path(passage.source).name == row["source"]


@contextmanager
def today_attribution():
    """Attribution as genlab did it before this benchmark: a marker-less sentence goes to the
    passage whose closest *line* has cosine >= 0.6 with it; no word-overlap step."""
    from genlab.ground import answer

    def lines_or_whole(text: str) -> list[str]:
        return answer.split_sentences(text) or [text]

    saved = answer.best_supported, answer.sentences_or_whole
    answer.best_supported, answer.sentences_or_whole = (lambda *_: None), lines_or_whole
    try:
        yield
    finally:
        answer.best_supported, answer.sentences_or_whole = saved


def retrieval(search, rows: list[dict], relevant: dict) -> dict:
    results = {}
    for method in search.methods:
        hit1 = hit4 = doc1 = 0
        for row in rows:
            ranked = [i for i, _ in search.rank(row["question"], method, RETRIEVED)]
            wanted = relevant[row["id"]]
            hit1 += bool(ranked) and ranked[0] in wanted
            hit4 += bool(set(ranked) & wanted)
            doc1 += bool(ranked) and Path(search.chunks[ranked[0]].path).name == row["source"]
        results[method] = {"hit@1": rate(hit1, len(rows)), "hit@4": rate(hit4, len(rows)),
                           "doc@1": rate(doc1, len(rows))}
    return results


def model_rerank(model, search, rows: list[dict], relevant: dict) -> dict:
    """The embedded model scores each of the reranked top 8 in enum mode ("Does the passage
    answer the question?" yes/no); P(yes) from the chosen token's logprob reorders them."""
    prompt = "Passage:\n{passage}\n\nQuestion: {question}\n\nDoes the passage answer the question? Answer yes or no."
    hit1 = hit4 = 0
    seconds = []
    for row in rows:
        ranked = [i for i, _ in search.rank(row["question"], "reranked", RERANK_CANDIDATES)]
        started = time.perf_counter()
        scores = []
        for i in ranked:
            choice = model.chat(prompt.format(passage=" ".join(search.chunks[i].text.split()), question=row["question"]),
                                temperature=0, max_tokens=4, logprobs=True, cache=True,
                                response_format={"type": "enum", "enum": ["yes", "no"]}).choices[0]
            p = math.exp(choice.logprobs[0]["logprob"]) if choice.logprobs else 0.5
            scores.append(p if choice.text.strip() == "yes" else 1 - p)
        seconds.append(time.perf_counter() - started)
        order = [ranked[j] for j in sorted(range(len(ranked)), key=lambda j: (-scores[j], j))]
        hit1 += bool(order) and order[0] in relevant[row["id"]]
        hit4 += bool(set(order[:RETRIEVED]) & relevant[row["id"]])
    return {"hit@1": rate(hit1, len(rows)), "hit@4": rate(hit4, len(rows)), "candidates": RERANK_CANDIDATES,
            "model_calls_per_query": RERANK_CANDIDATES, "seconds_per_query_median": median(seconds),
            "seconds_per_query_p95": float(np.percentile(seconds, 95))}


def titles_dev(search, rows: list[dict], relevant: dict) -> dict:
    """On dev: matching of page titles named in the question. A page is named when its title
    (less a leading "The" and its quotes: 'global statement') is a run of the question's
    words, stemmed as BM25 stems them; its chunks among the reranked candidates, in order of
    their best sentence, become a third list in the fusion. Titles of one word ("Calls",
    "Methods") are common words, so the rule is tried with and without them."""
    import Stemmer

    from genlab.ground.retrieval import _fuse

    stem = Stemmer.Stemmer("english").stemWord

    def stems(text: str) -> list[str]:
        return [stem(w) for w in re.findall(r"[a-z_]+", text.lower())]

    titles = {c.title: stems(re.sub(r"^the ", "", c.title.lower())) for c in search.chunks}

    def named(title: str, question: list[str], min_words: int) -> bool:
        words = titles[title]
        return len(words) >= min_words and any(question[i:i + len(words)] == words for i in range(len(question)))

    def ranked(question: str, min_words: int | None) -> list[int]:
        lists = search.reranking_lists(question)
        if min_words is not None:
            words = stems(question)
            lists.append([(i, 0.0) for i, _ in lists[1] if named(search.chunks[i].title, words, min_words)])
        return [i for i, _ in _fuse(lists)[:RETRIEVED]]

    result = {}
    for name, min_words in (("shipped", None), ("titles", 1), ("titles_of_2_words_or_more", 2)):
        hit1 = hit4 = doc1 = 0
        for row in rows:
            top = ranked(row["question"], min_words)
            hit1 += top[0] in relevant[row["id"]]
            hit4 += bool(set(top) & relevant[row["id"]])
            doc1 += Path(search.chunks[top[0]].path).name == row["source"]
        result[name] = {"hit@1": rate(hit1, len(rows)), "hit@4": rate(hit4, len(rows)), "doc@1": rate(doc1, len(rows))}
    result["questions_naming_a_title"] = {
        f"{n}_words_or_more": sum(any(named(t, stems(row["question"]), n) for t in titles) for row in rows)
        for n in (1, 2)}
    return result


def latency(search, rows: list[dict], embedder) -> dict:
    from genlab.ground.answer import _with_similarity, abstain_reason

    results = {}
    for method in search.methods:
        search.rank(rows[0]["question"] + " warm", method, RETRIEVED)
        times = []
        for row in rows:
            started = time.perf_counter()
            passages = _with_similarity(search.search(row["question"], RETRIEVED, method), row["question"], embedder)
            abstain_reason(row["question"], passages, search)
            times.append(1000 * (time.perf_counter() - started))
        results[method] = {"median_ms": median(times), "p95_ms": float(np.percentile(times, 95))}
    for method in search.methods:
        results[method]["p95_vs_bm25"] = results[method]["p95_ms"] / results["bm25"]["p95_ms"]
    return results


def attribution(search, rows: list[dict], relevant: dict, embedder) -> dict:
    """Each gold answer sentence, grounded as a marker-less answer against the passages each
    pipeline shows the model: today's 4, genlab's first answer.SHOWN of its 4."""
    from genlab.ground.answer import SHOWN, ground_text

    index = {chunk.id: i for i, chunk in enumerate(search.chunks)}
    results = {}
    for name, method, count in (("today", "hybrid", RETRIEVED), ("genlab", "reranked", SHOWN)):
        attributed = correct = shown = 0
        for row in rows:
            passages = search.search(row["question"], RETRIEVED, method)[:count]
            ranked = [index[p.chunk_id] for p in passages]
            with today_attribution() if name == "today" else _nothing():
                supports = ground_text(row["gold"], passages, embedder).supports
            cited = {ranked[i] for s in supports for i in s.chunk_indices}
            shown += bool(set(ranked) & relevant[row["id"]])
            attributed += bool(cited)
            correct += bool(cited) and cited <= relevant[row["id"]]
        results[name] = {"precision": rate(correct, attributed), "recall": rate(correct, shown), "shown": count}
    return results


@contextmanager
def _nothing():
    yield


def gate_feature(search, question: str, passages: list) -> tuple[float, float, int]:
    """What the two gates read: the best cosine, the coverage share, the count of unseen words."""
    from genlab.ground.support import question_coverage

    found = question_coverage(question, [p.text for p in passages], search.term_statistics())
    return max((p.similarity for p in passages), default=0.0), found.share, len(found.unseen)


def gate_refuses(feature: tuple[float, float, int], min_coverage: float, unseen_rule: bool = True) -> bool:
    from genlab.ground.answer import MIN_SIMILARITY

    similarity, share, unseen = feature
    return similarity < MIN_SIMILARITY or share < min_coverage or (unseen_rule and unseen > 0)


def gate_features(search, rows: list[dict], embedder) -> list[tuple[float, float, int]]:
    from genlab.ground.answer import _with_similarity

    return [gate_feature(search, row["question"],
                         _with_similarity(search.search(row["question"], RETRIEVED, "reranked"), row["question"], embedder))
            for row in rows]


def cited_pages(answer) -> set[str]:
    return {Path(answer.chunks[i].source).name for s in answer.supports for i in s.chunk_indices}


def abstention(search, rows: list[dict], embedder) -> dict:
    from genlab.ground.answer import MIN_COVERAGE, MIN_SIMILARITY, _with_similarity, abstain_reason

    results = {}
    for name, method, coverage in (("today", "hybrid", 0.0), ("genlab", "reranked", MIN_COVERAGE)):
        refused = []
        for row in rows:
            passages = _with_similarity(search.search(row["question"], RETRIEVED, method), row["question"], embedder)
            refused.append(bool(abstain_reason(row["question"], passages, search, MIN_SIMILARITY, coverage)))
        unanswered = [r for r, row in zip(refused, rows) if not row["row"].answerable]
        answerable = [r for r, row in zip(refused, rows) if row["row"].answerable]
        results[name] = {"recall": rate(sum(unanswered), len(unanswered)),
                         "false_abstentions": rate(sum(answerable), len(answerable)),
                         # Of the questions refused, the share that no page answers (None: none refused).
                         "precision": rate(sum(unanswered), sum(refused)) if any(refused) else None}
    return results


def abstention_rates(refused: list[bool], rows: list[dict]) -> dict:
    """Recall on the unanswered rows and false abstentions on the answerable ones, as fractions."""
    return {"recall": float(np.mean([r for r, row in zip(refused, rows) if not row["row"].answerable])),
            "false_abstentions": float(np.mean([r for r, row in zip(refused, rows) if row["row"].answerable]))}


def best_allowed(grid: list[dict]) -> dict:
    """The setting with the highest recall whose false abstentions stay within
    MAX_FALSE_ABSTENTIONS; a tie goes to fewer false abstentions, then to the earlier setting."""
    allowed = [g for g in grid if g["false_abstentions"] <= MAX_FALSE_ABSTENTIONS]
    return max(allowed, key=lambda g: (g["recall"], -g["false_abstentions"]))


def choose_coverage(features: list, rows: list[dict], velmora: list) -> dict:
    """On dev: the threshold with the highest abstention recall whose false abstentions stay
    within MAX_FALSE_ABSTENTIONS, with and without refusing words no source uses."""
    grid = []
    for unseen in (True, False):
        for threshold in COVERAGE_GRID:
            def refuses(f):
                return gate_refuses(f, threshold, unseen)

            velmora_false = np.mean([refuses(f) for f, answerable in velmora if answerable])
            grid.append({"refuse_unseen_words": unseen, "min_coverage": threshold,
                         **abstention_rates([refuses(f) for f in features], rows),
                         "velmora_false_abstentions": float(velmora_false)})
    return {"grid": grid, "chosen": best_allowed(grid)}


def synonyms_dev(search, rows: list[dict], features: list, embedder) -> dict:
    """On dev: the unseen-word rule made lenient with paraphrase. A question word that no
    source uses counts as present when a word of the notebook is within cosine ``tau`` of it
    (all-MiniLM-L6-v2 on single words; numbers are never rescued). Every ``tau`` with every
    coverage threshold, chosen by choose_coverage's rule, the strict rule (tau None) first
    so that a tie keeps it; and each unseen word's nearest notebook word. ``features`` are
    the rows' gate_features."""
    from genlab.ground.support import QUESTION_WORDS, content_words, stems

    frequency = search.term_statistics().document_frequency
    vocabulary = sorted({w for p in search.passages() for w in content_words(p.text) if not w[0].isdigit()})
    vectors = embedder.encode(vocabulary)
    nearest = []
    for row, feature in zip(rows, features):
        unseen = {}
        for word in content_words(row["question"]):
            stem = next(iter(stems(word, QUESTION_WORDS)), None)
            if stem and frequency.get(stem, 0) == 0:
                unseen.setdefault(stem, word)
        assert len(unseen) == feature[2], (row["id"], unseen)     # the same words the gate counts
        words = [w for w in unseen.values() if not w[0].isdigit()]
        similarity = embedder.encode(words) @ vectors.T if words else np.zeros((0, len(vocabulary)))
        nearest.append([{"word": w, "nearest": vocabulary[int(s.argmax())], "cosine": round(float(s.max()), 3)}
                        for w, s in zip(words, similarity)]
                       + [{"word": w, "nearest": None, "cosine": 0.0} for w in unseen.values() if w[0].isdigit()])
    grid = []
    for tau in (None, *SYNONYM_GRID):
        for threshold in COVERAGE_GRID:
            refused = [gate_refuses(f, threshold, unseen_rule=False)
                       or any(tau is None or w["cosine"] < tau for w in words) for f, words in zip(features, nearest)]
            grid.append({"tau": tau, "min_coverage": threshold, **abstention_rates(refused, rows)})
    return {"grid": grid, "chosen": best_allowed(grid),
            "unseen_words": [{"id": row["id"], "answerable": row["row"].answerable, "words": words}
                             for row, words in zip(rows, nearest) if words]}


def end_to_end(model, search_today, search_genlab, rows: list[dict], progress) -> dict:
    from genlab.ground.answer import ask

    results, samples = {}, []
    for name, search, options in (("today", search_today, {"min_coverage": 0.0, "shown": RETRIEVED, "quote": False}),
                                  ("genlab", search_genlab, {})):
        right = contains = abstained_answerable = abstained_unanswered = 0
        answerable = [row for row in rows if row["row"].answerable]
        started = time.perf_counter()
        for n, row in enumerate(rows, 1):
            with today_attribution() if name == "today" else _nothing():
                answer = ask(model, search, row["question"], **options)
            cited = cited_pages(answer)
            if row["row"].answerable:
                right += row["source"] in cited
                contains += row["answer"].lower() in answer.answer.lower()
                abstained_answerable += answer.abstained
            else:
                abstained_unanswered += answer.abstained
            samples.append({"pipeline": name, "id": row["id"], "kind": row["kind"], "abstained": answer.abstained,
                            "reason": answer.abstain_reason, "cited": sorted(cited), "answer": answer.answer[:300]})
            progress(name, n, len(rows))
        unanswered = len(rows) - len(answerable)
        results[name] = {"right_page_cited": rate(right, len(answerable)),
                         "answer_contains_reference": rate(contains, len(answerable)),
                         "abstention_recall": rate(abstained_unanswered, unanswered),
                         "false_abstentions": rate(abstained_answerable, len(answerable)),
                         "seconds": time.perf_counter() - started}
    return {**results, "answers": samples}


def dev_answers(model, search, rows: list[dict], embedder, progress) -> dict:
    """Dev questions answered with both gates off: shown 1 to 4 of the passages found, at
    ANSWER_TOKENS (answer.SHOWN came from this), and shown 4 at LONG_ANSWER tokens (the
    length ANSWER_TOKENS was chosen against, when 4 were shown).

    Also, at each coverage threshold of the grid (with the unseen-word rule): the gates alone
    against the gates plus a draft check that refuses an answer none of whose sentences a
    shown passage backs (by words, or by meaning and numbers: answer.attribute), on the
    answers genlab gives (answer.SHOWN passages, ANSWER_TOKENS)."""
    from genlab.ground.answer import (ANSWER_TOKENS, SHOWN, _with_similarity, answer_from, attribute,
                                      sentence_similarity)

    settings = [(shown, ANSWER_TOKENS) for shown in SHOWN_GRID] + [(RETRIEVED, LONG_ANSWER)]
    found: dict = {setting: [] for setting in settings}
    backed, features = [], []
    for n, row in enumerate(rows, 1):
        passages = _with_similarity(search.search(row["question"], RETRIEVED, "reranked"), row["question"], embedder)
        features.append(gate_feature(search, row["question"], passages))
        for shown, tokens in settings:
            answer = answer_from(model, row["question"], passages[:shown], embedder=embedder, max_tokens=tokens)
            reference = row.get("answer")
            found[shown, tokens].append((row.get("source") in cited_pages(answer),
                                         bool(reference) and reference.lower() in answer.answer.lower(),
                                         answer.abstained))
            if (shown, tokens) == (SHOWN, ANSWER_TOKENS):
                texts = [s.text for s in answer.supports]
                similarity = sentence_similarity(texts, passages[:shown], embedder)
                backed.append(not answer.abstained and any(attribute(t, passages[:shown], similarity[i])
                                                           for i, t in enumerate(texts)))
        progress("dev answers", n, len(rows))
    answerable = [i for i, row in enumerate(rows) if row["row"].answerable]
    unanswered = [i for i, row in enumerate(rows) if not row["row"].answerable]
    result: dict = {"answers": [
        {"shown": shown, "tokens": tokens,
         "right_page_cited": rate(sum(found[shown, tokens][i][0] for i in answerable), len(answerable)),
         "answer_contains_reference": rate(sum(found[shown, tokens][i][1] for i in answerable), len(answerable)),
         "model_abstained_answerable": sum(found[shown, tokens][i][2] for i in answerable)}
        for shown, tokens in settings]}
    grid = []
    shipped = found[SHOWN, ANSWER_TOKENS]
    for threshold in COVERAGE_GRID:
        gate = [gate_refuses(f, threshold) for f in features]
        for draft_check in (False, True):
            refused = [g or shipped[i][2] or (draft_check and not backed[i]) for i, g in enumerate(gate)]
            grid.append({"min_coverage": threshold, "draft_check": draft_check,
                         "recall": rate(sum(refused[i] for i in unanswered), len(unanswered)),
                         "false_abstentions": rate(sum(refused[i] for i in answerable), len(answerable))})
    result["draft_check_grid"] = grid
    return result


def quote_dev(model, search, rows: list[dict], embedder, progress) -> dict:
    """Dev questions answered as genlab answers them, gates off: the model's draft, and the
    same with a draft that cites nothing replaced by the shown passages' sentence closest to
    the question (answer.quote_if_uncited; what ``ask`` does by default)."""
    from genlab.ground.answer import SHOWN, _with_similarity, answer_from, quote_if_uncited

    right = {"draft": 0, "quoted": 0}
    contains = {"draft": 0, "quoted": 0}
    quoted, answerable = [], 0
    for n, row in enumerate(rows, 1):
        passages = _with_similarity(search.search(row["question"], RETRIEVED, "reranked"), row["question"], embedder)
        draft = answer_from(model, row["question"], passages[:SHOWN], embedder=embedder)
        final = quote_if_uncited(draft, embedder)
        if final is not draft:
            quoted.append({"id": row["id"], "answerable": row["row"].answerable, "draft": draft.answer[:200],
                           "quote": final.answer, "right_page": row.get("source") in cited_pages(final)})
        if row["row"].answerable:
            answerable += 1
            for name, answer in (("draft", draft), ("quoted", final)):
                right[name] += row["source"] in cited_pages(answer)
                contains[name] += row["answer"].lower() in answer.answer.lower()
        progress("quote dev", n, len(rows))
    return {name: {"right_page_cited": rate(right[name], answerable),
                   "answer_contains_reference": rate(contains[name], answerable)} for name in right} | {
        "quoted_answerable": sum(q["answerable"] for q in quoted),
        "quoted_unanswered": sum(not q["answerable"] for q in quoted), "quotes": quoted}


def quote_velmora(model) -> dict:
    """genlab's answers on the example notebook's QA set, with and without the quote."""
    from scipy.stats import binomtest

    from genlab.ground.evaluation import end_to_end, load_qa
    from genlab.ground.retrieval import NotebookSearch

    rows = load_qa(VELMORA.parent / "velmora-qa.jsonl")
    result, contains = {}, {}
    for name, quote in (("drafts", False), ("quoted", True)):
        e2e = end_to_end(model, NotebookSearch.open("velmora"), rows, quote=quote)
        contains[name] = [r["contains_reference"] for r in e2e["rows"]]
        answered = [r for r in e2e["rows"] if not r["abstained"]]
        with_reference = [r for r in e2e["rows"] if r["answerable"] and r["contains_reference"] is not None]
        result[name] = {"answer_contains_reference": rate(sum(r["contains_reference"] for r in with_reference),
                                                          len(with_reference)),
                        "quotes": rate(sum(r["quoted"] for r in answered), len(answered)),
                        "supported_fraction": e2e["supported_fraction"],
                        "citation_precision": e2e["citation_precision"]}
    # Paired, question by question: answers that gained the reference with the quote, and lost it.
    gained = sum(bool(q) and not d for d, q in zip(contains["drafts"], contains["quoted"]))
    lost = sum(bool(d) and not q for d, q in zip(contains["drafts"], contains["quoted"]))
    result["paired"] = {"gained": gained, "lost": lost,
                        "sign_test_p": float(binomtest(gained, gained + lost).pvalue) if gained + lost else 1.0}
    return result


def gecko_dev(search, rows: list[dict], embedder) -> dict:
    """Dev retrieval per method and the shipped gates, with the notebook's embedder tuned
    Gecko-style on pyref's own chunks, against MiniLM as shipped. The positives are the
    chunks the questions came from: the embedded model's picks follow the position they are
    shown in (2 of 199 survive every order in bench/tune_distill.py gecko), so ``positive="llm"``
    would end on nearly the same ones."""
    from genlab.ground.evaluation import relevant_chunks
    from genlab.ground.notebook import Notebook, list_notebooks
    from genlab.ground.retrieval import NotebookSearch
    from genlab.train.embeddings import SUMMARY_FILE, distill_embeddings

    tuned_dir = Path(os.environ["GENLAB_HOME"]) / "gecko-pyref"
    if not (tuned_dir / SUMMARY_FILE).exists():
        distill_embeddings("pyref", "local", tuned_dir, positive="seed", resume=True)
    summary = json.loads((tuned_dir / SUMMARY_FILE).read_text())
    if "pyref-gecko" not in list_notebooks():
        Notebook.create("pyref-gecko", str(tuned_dir)).add([PYREF])
    tuned = NotebookSearch(Notebook.open("pyref-gecko"))
    answerable = [row for row in rows if row["row"].answerable]
    result = {"distillation": {k: summary[k] for k in ("mined_passages", "training_triples", "steps",
                                                       "mining_seconds", "training_seconds")}
              | {"llm_queries_held_out": {k: v for k, v in summary["held_out"]["llm"].items() if k != "file"}}}
    for name, notebook_search in (("shipped", search), ("tuned", tuned)):
        relevant = {row["id"]: relevant_chunks(notebook_search.passages(), row["row"], QA, "chunk") for row in answerable}
        result[name] = {"retrieval": retrieval(notebook_search, answerable, relevant),
                        "abstention": abstention(notebook_search, rows, embedder)["genlab"]}
    return result


def likelihood_dev(search, rows: list[dict], embedder) -> dict:
    """On dev: UPR's question-generation score as an abstention signal. For each passage
    found, how much more likely the embedded model (its transformers copy) finds the question
    as the reply to "write a question that this passage answers" than with no passage (mean
    log-probability per question token), the best of the 4. Read as a ranking of answerable
    above unanswered questions (AUROC) next to the gates' own features, and as a gate on top
    of the shipped ones: refuse also under a threshold, or let through what they refuse at or
    over it."""
    import torch
    from scipy.stats import mannwhitneyu
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from genlab.ground.answer import MIN_COVERAGE, _with_similarity
    from genlab.train.base import resolve_model_dir
    from genlab.train.distill import reply_nll

    folder = resolve_model_dir("local")
    lm, tokenizer = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), AutoTokenizer.from_pretrained(folder)

    def nll(prompt: str, question: str) -> float:
        return reply_nll(lm, tokenizer, [[{"role": "user", "content": prompt}, {"role": "assistant", "content": question}]])

    gains, features = [], []
    for row in rows:
        question = row["question"]
        passages = _with_similarity(search.search(question, RETRIEVED, "reranked"), question, embedder)
        features.append(gate_feature(search, question, passages))
        alone = nll(NO_PASSAGE_PROMPT, question)
        gains.append(max(alone - nll(QUESTION_PROMPT.format(passage=p.text), question) for p in passages))
    answerable = np.array([row["row"].answerable for row in rows])

    def auroc(values) -> float:
        values = np.asarray(values, dtype=float)
        return float(mannwhitneyu(values[answerable], values[~answerable]).statistic
                     / (answerable.sum() * (~answerable).sum()))

    shipped = [gate_refuses(f, MIN_COVERAGE) for f in features]
    grid = []
    for threshold in np.quantile(gains, np.linspace(0.05, 0.95, 19)):
        for rule, refused in (("also refuse under", [r or g < threshold for r, g in zip(shipped, gains)]),
                              ("let through at or over", [r and g < threshold for r, g in zip(shipped, gains)])):
            grid.append({"rule": rule, "threshold": float(threshold), **abstention_rates(refused, rows)})
    return {"auroc": {"best cosine": auroc([f[0] for f in features]), "coverage share": auroc([f[1] for f in features]),
                      "fewer unseen words": auroc([-f[2] for f in features]), "likelihood gain": auroc(gains)},
            "shipped": abstention_rates(shipped, rows), "grid": grid, "chosen": best_allowed(grid)}


def signals_dev(search, rows: list[dict], embedder) -> dict:
    """On dev: every signal retrieval gives about a question, as a ranking of answerable above
    unanswered questions (AUROC), and all of them combined by a logistic regression whose
    out-of-fold scores (10 folds, 5 shuffles) are cut where false abstentions reach
    MAX_FALSE_ABSTENTIONS: the abstention recall a gate over these signals could have, next
    to the shipped gates'. Nothing here is shipped; it asks whether a better gate is in them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from genlab.ground.answer import MIN_COVERAGE, _with_similarity
    from genlab.ground.sources import sentences_or_whole
    from genlab.ground.support import question_coverage

    statistics = search.term_statistics()
    signals: dict[str, list[float]] = {}
    shipped = []
    for row in rows:
        question = row["question"]
        passages = _with_similarity(search.search(question, RETRIEVED, "reranked"), question, embedder)
        feature = gate_feature(search, question, passages)
        shipped.append(gate_refuses(feature, MIN_COVERAGE))
        def share(*texts: str) -> float:
            """The gate's coverage share of ``texts`` read as one passage."""
            return question_coverage(question, [" ".join(texts)], statistics).share

        sentences = [s for p in passages for s in sentences_or_whole(p.text)]
        cosines = sorted((p.similarity for p in passages), reverse=True)
        values = {"best cosine": cosines[0], "second cosine": cosines[1], "reranked score": passages[0].score,
                  "coverage share": feature[1],
                  "second coverage share": sorted(share(p.text) for p in passages)[-2],
                  "coverage of the 4 together": share(*(p.text for p in passages)),
                  "fewer unseen words": -feature[2],
                  "best sentence's coverage": max(map(share, sentences)),
                  "best two sentences' coverage": max(share(*pair) for pair in zip(sentences, sentences[1:] + [""])),
                  "best sentence's cosine": float((embedder.encode(sentences) @ embedder.encode([question])[0]).max())}
        for name, value in values.items():
            signals.setdefault(name, []).append(float(value))
    unanswered = np.array([not row["row"].answerable for row in rows])
    features = np.array(list(signals.values())).T
    scores = np.zeros(len(rows))
    for shuffle in range(5):
        for train, test in StratifiedKFold(10, shuffle=True, random_state=shuffle).split(features, unanswered):
            fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(features[train], unanswered[train])
            scores[test] += fitted.predict_proba(features[test])[:, 1] / 5
    answerable_scores = np.sort(scores[~unanswered])
    cut = answerable_scores[math.ceil((1 - MAX_FALSE_ABSTENTIONS) * len(answerable_scores)) - 1]
    return {"auroc": {name: float(roc_auc_score(~unanswered, values)) for name, values in signals.items()},
            "combined": {"auroc": float(roc_auc_score(unanswered, scores)),
                         **abstention_rates([bool(s > cut) for s in scores], rows)},
            "shipped": abstention_rates(shipped, rows)}


def main(sections: tuple[str, ...] = SECTIONS, model_spec: str = "local") -> None:
    if unknown := set(sections) - set(SECTIONS):
        raise SystemExit(f"unknown sections {sorted(unknown)}; name some of {', '.join(SECTIONS)}")
    os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-bench-"))
    from genlab.ground.embed import load_embedder
    from genlab.ground.evaluation import relevant_chunks
    from genlab.ground.notebook import Notebook, list_notebooks
    from genlab.ground.retrieval import NotebookSearch
    from genlab.models import get_model

    embedder = load_embedder()
    index_seconds = None
    if "pyref" not in list_notebooks():
        started = time.perf_counter()
        Notebook.create("pyref").add([PYREF])
        index_seconds = time.perf_counter() - started
    if "velmora" not in list_notebooks():
        Notebook.create("velmora").add([VELMORA])
    notebook = Notebook.open("pyref")
    search = NotebookSearch(notebook)
    owners, _ = notebook.sentence_vectors()
    rows = load_rows()
    passages = search.passages()
    relevant = {row["id"]: relevant_chunks(passages, row["row"], QA, "chunk") for row in rows if row["row"].answerable}
    halves = {half: [row for row in rows if row["split"] == half] for half in ("dev", "heldout")}
    answerable = {half: [row for row in part if row["row"].answerable] for half, part in halves.items()}
    print(f"pyref: {len(notebook.sources())} pages, {len(search.chunks)} chunks, {len(owners)} sentences"
          + (f", indexed in {index_seconds:.1f} s" if index_seconds else "")
          + f"; {len(rows)} questions (" + ", ".join(f"{h} {len(p)}" for h, p in halves.items()) + ")")

    # Another model's figures go beside the embedded model's, never over them.
    name = "ground_hard" if model_spec == "local" else "ground_hard-" + re.sub(r"[^A-Za-z0-9.-]+", "-", model_spec)
    previous = ROOT / "bench" / "results" / f"{name}.json"
    data: dict = json.loads(previous.read_text()) if previous.exists() and sections != SECTIONS else {}
    data.pop("machine", None)
    # The indexing time the README quotes is the full run's; a partial run that had to index again keeps it.
    kept = data.get("corpus", {}).get("index_seconds")
    data["corpus"] = {"pages": len(notebook.sources()), "chunks": len(search.chunks), "sentences": len(owners),
                      "index_seconds": kept if kept is not None else index_seconds, "questions": len(rows)}
    if "retrieval" in sections:
        data["retrieval"] = {half: retrieval(search, answerable[half], relevant) for half in halves}
        for half in halves:
            print(f"retrieval {half}: " + "; ".join(f"{m} hit@4 {r['hit@4']['rate']:.3f} hit@1 {r['hit@1']['rate']:.3f}"
                                                    for m, r in data["retrieval"][half].items()))
    if "latency" in sections:
        data["latency"] = latency(search, halves["heldout"], embedder)
        print("latency (search + gates): " + "; ".join(f"{m} median {r['median_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms"
                                                      for m, r in data["latency"].items()))
    if "attribution" in sections:
        data["attribution"] = {half: attribution(search, answerable[half], relevant, embedder) for half in halves}
        for half in halves:
            print(f"attribution {half}: " + "; ".join(f"{n} precision {r['precision']['rate']:.3f} recall "
                                                      f"{r['recall']['rate']:.3f}"
                                                      for n, r in data["attribution"][half].items()))
    if "abstention" in sections:
        velmora_search = NotebookSearch.open("velmora")
        velmora_rows = [json.loads(line) for line in (VELMORA.parent / "velmora-qa.jsonl").read_text().splitlines()]
        velmora = [(f, row.get("answerable", True)) for f, row in zip(
            gate_features(velmora_search, velmora_rows, embedder), velmora_rows)]
        dev_features = gate_features(search, halves["dev"], embedder)
        data["coverage_choice_dev"] = choose_coverage(dev_features, halves["dev"], velmora)
        print(f"coverage chosen on dev: {data['coverage_choice_dev']['chosen']}")
        data["synonyms_dev"] = synonyms_dev(search, halves["dev"], dev_features, embedder)
        print(f"with synonyms, chosen on dev: {data['synonyms_dev']['chosen']}")
        data["abstention"] = {half: abstention(search, halves[half], embedder) for half in halves}
        for half in halves:
            print(f"abstention {half}: " + "; ".join(f"{n} recall {r['recall']['rate']:.3f} false "
                                                     f"{r['false_abstentions']['rate']:.3f} precision "
                                                     + (f"{r['precision']['rate']:.3f}" if r["precision"] else "-")
                                                     for n, r in data["abstention"][half].items()))
    model = get_model(model_spec, source="bench")
    if "titles_dev" in sections:
        data["titles_dev"] = titles_dev(search, answerable["dev"], relevant)
        print("dev, titles named in the question: " + "; ".join(
            f"{n} hit@1 {r['hit@1']['passed']} hit@4 {r['hit@4']['passed']} doc@1 {r['doc@1']['passed']}"
            for n, r in data["titles_dev"].items() if n != "questions_naming_a_title"))
    if "rerank" in sections:
        data["model_rerank_dev"] = model_rerank(model, search, answerable["dev"], relevant)
        print(f"model as reranker (dev): {data['model_rerank_dev']}")
    last = [0.0]

    def progress(name, done, total):
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            print(f"  end to end, {name}: {done}/{total}", flush=True)

    if "end_to_end" in sections:
        data["end_to_end_heldout"] = end_to_end(model, NotebookSearch(notebook, "hybrid"), search, halves["heldout"],
                                                progress)
        for name in ("today", "genlab"):
            r = data["end_to_end_heldout"][name]
            print(f"end to end {name}: right page cited {r['right_page_cited']['rate']:.3f}, "
                  f"abstention recall {r['abstention_recall']['rate']:.3f}, false {r['false_abstentions']['rate']:.3f}")
    if "dev_answers" in sections:
        data["dev_answers"] = dev_answers(model, search, halves["dev"], embedder, progress)
        for r in data["dev_answers"]["answers"]:
            cited, contains = r["right_page_cited"], r["answer_contains_reference"]
            print(f"dev, gates off, {r['shown']} shown, {r['tokens']} tokens: right page cited "
                  f"{cited['passed']}/{cited['n']}, contains the reference {contains['passed']}/{contains['n']}")
    if "quote_dev" in sections:
        data["quote_dev"] = quote_dev(model, search, halves["dev"], embedder, progress)
        for name in ("draft", "quoted"):
            r = data["quote_dev"][name]
            print(f"dev, gates off, {name}: right page cited {r['right_page_cited']['passed']}/{r['right_page_cited']['n']}, "
                  f"contains the reference {r['answer_contains_reference']['passed']}/{r['answer_contains_reference']['n']}")
    if "quote_velmora" in sections:
        data["quote_velmora"] = quote_velmora(model)
        print(f"velmora, paired: {data['quote_velmora']['paired']}")
        for name in ("drafts", "quoted"):
            r = data["quote_velmora"][name]
            c = r["answer_contains_reference"]
            print(f"velmora, {name}: contains the reference {c['passed']}/{c['n']}, quotes {r['quotes']['passed']}, "
                  f"claims supported {r['supported_fraction']:.2f}")
    if "gecko_dev" in sections:
        data["gecko_dev"] = gecko_dev(search, halves["dev"], embedder)
        for name in ("shipped", "tuned"):
            r = data["gecko_dev"][name]
            print(f"dev, MiniLM {name}: " + "; ".join(f"{m} hit@1 {x['hit@1']['passed']} hit@4 {x['hit@4']['passed']}"
                                                      for m, x in r["retrieval"].items())
                  + f"; abstention recall {r['abstention']['recall']['passed']}, "
                  f"false {r['abstention']['false_abstentions']['passed']}")
    if "signals_dev" in sections:
        data["signals_dev"] = r = signals_dev(search, halves["dev"], embedder)
        print("dev AUROC, answerable above unanswered: " + ", ".join(f"{k} {v:.3f}" for k, v in r["auroc"].items()))
        print(f"dev, all signals combined (out of fold): {r['combined']}; shipped gates: {r['shipped']}")
    if "likelihood_dev" in sections:
        data["likelihood_dev"] = r = likelihood_dev(search, halves["dev"], embedder)
        print("dev AUROC, answerable above unanswered: " + ", ".join(f"{k} {v:.3f}" for k, v in r["auroc"].items()))
        print(f"dev, shipped gates: {r['shipped']}; with the likelihood, chosen: {r['chosen']}")
    write(name, data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Grounding on look-alike reference pages (see the module docstring).")
    parser.add_argument("sections", nargs="*", help=f"sections to run (all by default): {', '.join(SECTIONS)}")
    parser.add_argument("--model", default="local", help="the model of the sections that ask one (rerank, end to "
                        "end, answers), e.g. gemini:gemini-2.5-flash")
    args = parser.parse_args()
    main(tuple(args.sections) or SECTIONS, args.model)
