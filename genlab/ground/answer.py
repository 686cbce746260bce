"""Grounded answers: retrieve, answer only from the passages, and say which passage backs
which sentence, in the shape of Gemini's grounding metadata.

    question → search backend (k passages) → relevance gate → coverage gate
      ├─ either fails → "The sources do not say." (no model call, no supports)
      └─ prompt with the first ``shown`` passages, numbered → model → answer with [n] markers
           → markers stripped; each sentence a segment → its cited passages
             (the model's markers; else the passage that holds most of its words,
             else the one closest in meaning, when close enough)
           → confidence per citation = cosine(segment, passage)
           → no sentence cited at all → the shown passages' sentence closest to the
             question, quoted and cited instead (the model's draft is kept)

Both gates run before the model, so a question the sources do not cover is refused before
the model can answer it from memory:

* relevance: the best passage's cosine with the question must reach ``min_similarity``
  (off-topic questions);
* coverage: the question's content words, weighted by rarity in the notebook, must be
  ``min_coverage`` present in one retrieved passage, and none may be a word the notebook
  never uses. An on-topic question the sources do not answer ("the default stack size of
  a thread", asked of a language reference) passes the first gate on its topic words and
  fails this one on the words that carry its point.

The quote is for a small model that answers beside its sources ("The answer is: The answer
is:", "The answer to the question is no."): on the development half of the hard benchmark,
6 of the 70 answerable questions got such a draft, and the quote cited the right page for
all 6 (bench/ground_hard.py). ``quote=False`` passes the draft on, uncited.

Segment offsets are UTF-8 byte offsets into the answer, start inclusive and end exclusive,
as in Gemini's ``groundingSupports``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from genlab.ground.passage import Passage, SearchBackend
from genlab.ground.sources import SENTENCE, sentences_or_whole
from genlab.ground.support import best_supported, numbers_match, question_coverage, words_with_stems
from genlab.models import Model, Usage

ABSTENTION = "The sources do not say."
#: Passages retrieved; the gates read them all.
DEFAULT_K = 4
#: Of those, the ones the model is shown. On the development half of the hard benchmark the
#: embedded model shown the first 2 cites the right page in 59 of 70 answers against 55 when
#: shown 4 (54 with 1, 55 with 3), and the shorter prompt answers sooner: shown more pages
#: that look alike, it retells the wrong one (bench/ground_hard.py). The gates keep all 4:
#: judged on 2 they refuse more of both kinds. A bigger model may use more (``--shown 4``).
SHOWN = 2
#: Cosine (all-MiniLM-L6-v2) the best passage must reach for the question to count as covered.
#: On the example notebook's QA set among 3,000 chunks of docstrings, covered questions' best
#: passages score 0.27-0.76 and off-topic questions' 0.16-0.42 (bench/ground_retrieval.py,
#: gate_cosine): the ranges overlap, so this trades one kind of mistake for the other.
MIN_SIMILARITY = 0.35
#: Weighted share of the question's content words one retrieved passage must hold. Chosen on
#: the development half of examples/notebook/pyref-qa.jsonl (bench/ground_hard.py).
MIN_COVERAGE = 0.65
#: Cosine a sentence without a marker, and without a passage holding most of its words,
#: needs with a passage for genlab to cite that passage.
ATTRIBUTION_SIMILARITY = 0.6
#: Room for a few cited sentences. On the development half of the hard benchmark, the
#: embedded model's answers cut to their first ~150 tokens cite the right page and contain
#: the reference as often as its full 300 (55 and 27 of 70 both ways): what follows is
#: rambling.
ANSWER_TOKENS = 150

SYSTEM = ("You answer questions using only the numbered sources you are given. After each sentence, "
          "write the number of the source that supports it in square brackets, like [1]. "
          f"If the sources do not contain the answer, reply exactly: {ABSTENTION}")


@dataclass(frozen=True)
class Support:
    start: int                       # character offsets into the answer
    end: int
    text: str
    chunk_indices: tuple[int, ...]   # 0-based into GroundedAnswer.chunks
    confidences: tuple[float, ...]
    cited_by: str                    # "model" (its [n] markers) or "genlab" (attributed by words or meaning)


@dataclass
class GroundedAnswer:
    question: str
    answer: str
    chunks: list[Passage]
    supports: list[Support] = field(default_factory=list)
    abstained: bool = False
    abstain_reason: str = ""         # why, for people: which gate refused, or that the model said so
    invalid_citations: int = 0       # markers naming a passage that was not shown
    usage: Usage = field(default_factory=Usage)
    draft: str | None = None         # the model's answer, when it cited nothing and a quote replaced it

    def with_markers(self, number: Callable[[int], int] = lambda i: i + 1) -> str:
        """The answer with [n] inserted at each support's end, as Gemini's docs show;
        ``number`` turns a chunk index into the n shown (default: its 1-based position)."""
        text, shift = self.answer, 0
        for support in sorted(self.supports, key=lambda s: s.end):
            marker = "".join(f"[{number(i)}]" for i in support.chunk_indices)
            text = text[:support.end + shift] + marker + text[support.end + shift:]
            shift += len(marker)
        return text

    def to_dict(self) -> dict[str, Any]:
        """Gemini's grounding metadata in the snake_case of its Python SDK."""
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            **({"abstain_reason": self.abstain_reason} if self.abstained else {}),
            **({"quoted": True, "draft": self.draft} if self.draft is not None else {}),
            "grounding_metadata": {
                "grounding_chunks": [
                    {"source": p.source, "title": p.title, "page": p.page, "start": p.start, "end": p.end,
                     "text": p.text} for p in self.chunks],
                "grounding_supports": [
                    {"segment": {"start_index": _byte_offset(self.answer, s.start),
                                 "end_index": _byte_offset(self.answer, s.end), "text": s.text},
                     "grounding_chunk_indices": list(s.chunk_indices),
                     "confidence_scores": [round(c, 4) for c in s.confidences]}
                    for s in self.supports],
            },
        }


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def ask(model: Model, backend: SearchBackend, question: str, *, k: int = DEFAULT_K, shown: int = SHOWN,
        min_similarity: float = MIN_SIMILARITY, min_coverage: float = MIN_COVERAGE,
        history: list[dict] | None = None, embedder=None, quote: bool = True) -> GroundedAnswer:
    """Answer ``question`` from what ``backend`` finds, or abstain when it finds nothing that answers it.
    The gates read the ``k`` passages found; the model is shown the first ``shown`` of them. With
    ``quote``, a draft that cites nothing becomes the shown passages' sentence closest to the question."""
    question = question.strip()
    passages = backend.search(question, k)
    embedder = embedder or _default_embedder()
    passages = _with_similarity(passages, question, embedder)
    if reason := abstain_reason(question, passages, backend, min_similarity, min_coverage):
        return GroundedAnswer(question, ABSTENTION, passages, abstained=True, abstain_reason=reason)
    grounded = answer_from(model, question, passages[:max(shown, 1)], history=history, embedder=embedder)
    return quote_if_uncited(grounded, embedder) if quote else grounded


def quote_if_uncited(draft: GroundedAnswer, embedder) -> GroundedAnswer:
    """For a draft that cites nothing (not an abstention, no support): the sentence of its
    passages closest in meaning to its question, as the answer, cited to its passage; the
    model's text is kept as ``draft``. Any other draft is returned as it is. Headings and
    fragments of fewer than 4 words are never quoted."""
    if draft.abstained or draft.supports:
        return draft
    candidates = [(j, " ".join(sentence.split())) for j, p in enumerate(draft.chunks)
                  for sentence in sentences_or_whole(p.text)
                  if not sentence.lstrip().startswith("#") and len(sentence.split()) >= 4]
    if not candidates:
        return draft
    vectors = embedder.encode([sentence for _, sentence in candidates])
    j, sentence = candidates[int(np.argmax(vectors @ embedder.encode([draft.question])[0]))]
    support = Support(0, len(sentence), sentence, (j,), (1.0,), "genlab")
    return replace(draft, answer=sentence, supports=[support], draft=draft.answer)


def abstain_reason(question: str, passages: list[Passage], backend: SearchBackend | None = None,
                   min_similarity: float = MIN_SIMILARITY, min_coverage: float = MIN_COVERAGE) -> str:
    """Why the passages cannot answer ``question`` (the gates above), or "" when they may.
    A backend with ``term_statistics()`` (a notebook) weighs words by rarity and knows
    which words none of its passages uses; others weigh every word the same."""
    if not passages:
        return "no passage was found"
    closest = max(p.similarity or 0.0 for p in passages)
    if closest < min_similarity:   # three digits: a table that shows 0.35 must not read as passing 0.35
        return f"the closest passage reaches cosine {closest:.3f} with the question, under {min_similarity:g}"
    if min_coverage <= 0:
        return ""
    statistics = backend.term_statistics() if callable(getattr(backend, "term_statistics", None)) else None
    found = question_coverage(question, [p.text for p in passages], statistics)
    if found.unseen:
        return "no source mentions " + ", ".join(f"'{word}'" for word in words_with_stems(question, found.unseen))
    if found.share < min_coverage:
        return f"the best passage holds {found.share:.0%} of what the question asks about (needs {min_coverage:.0%})"
    return ""


def answer_from(model: Model, question: str, passages: list[Passage], *, history: list[dict] | None = None,
                embedder=None, instruction: str = SYSTEM, max_tokens: int = ANSWER_TOKENS) -> GroundedAnswer:
    """Prompt the model with numbered passages and ground its answer in them."""
    messages = [{"role": "system", "content": instruction}, *(history or []),
                {"role": "user", "content": passages_block(passages) + f"\n\nQuestion: {question}"}]
    response = model.chat(messages, temperature=0, max_tokens=max_tokens, cache=True)
    grounded = ground_text(response.text, passages, embedder or _default_embedder())
    grounded.question, grounded.usage = question, response.usage
    return grounded


def passages_block(passages: list[Passage]) -> str:
    lines = ["Sources:"]
    for i, p in enumerate(passages, 1):
        lines.append(f"[{i}] ({p.where}) {' '.join(p.text.split())}")
    return "\n".join(lines)


MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
TRAILING_MARKERS = re.compile(r"([.!?]+)((?:\s*\[\d+(?:\s*,\s*\d+)*\])+)")


def ground_text(raw: str, passages: list[Passage], embedder) -> GroundedAnswer:
    """Strip [n] markers from ``raw`` and turn each sentence into a support for its passages."""
    # "… 1847. [1] Next" → "… 1847 [1]. Next": a marker after the full stop belongs to
    # the sentence before it, so move it inside, where sentence splitting keeps it.
    raw = cut_loop(drop_repeated_sentences(TRAILING_MARKERS.sub(r"\2\1", raw)))
    clean, markers, invalid = [], [], 0       # markers: (offset in clean text, passage indices)
    position = offset = 0
    for match in MARKER.finditer(raw):
        clean.append(raw[position:match.start()])
        offset += match.start() - position
        numbers = [int(n) for n in match.group(1).split(",")]
        valid = [n - 1 for n in numbers if 1 <= n <= len(passages)]
        invalid += len(numbers) - len(valid)
        markers.append((offset, valid))
        position = match.end()
    clean.append(raw[position:])
    joined = "".join(clean)
    answer = joined.strip()
    lead = len(joined) - len(joined.lstrip())
    markers = [(max(0, offset - lead), indices) for offset, indices in markers]
    if ABSTENTION.lower().rstrip(".") in answer.lower():
        return GroundedAnswer("", ABSTENTION, passages, abstained=True, abstain_reason="the model found no answer",
                              invalid_citations=invalid)

    sentences = [(m.start() + len(m.group()) - len(m.group().lstrip()), m.end())
                 for m in SENTENCE.finditer(answer) if m.group().strip()]
    if not sentences:
        return GroundedAnswer("", answer, passages, invalid_citations=invalid)
    cited: list[list[int]] = [[] for _ in sentences]
    for offset, indices in markers:
        # A marker belongs to the last sentence that starts before it ("… 1847. [1]").
        owner = max((i for i, (start, _) in enumerate(sentences) if start < offset), default=0)
        cited[owner] += [i for i in indices if i not in cited[owner]]

    texts = [answer[start:end] for start, end in sentences]
    similarity = sentence_similarity(texts, passages, embedder)
    supports = []
    for i, (start, end) in enumerate(sentences):
        indices, cited_by = cited[i], "model"
        if not indices and passages:
            indices, cited_by = attribute(texts[i], passages, similarity[i]), "genlab"
        if indices:
            supports.append(Support(start, end, texts[i], tuple(indices),
                                    tuple(float(max(0.0, similarity[i, j])) for j in indices), cited_by))
    return GroundedAnswer("", answer, passages, supports, invalid_citations=invalid)


def attribute(sentence: str, passages: list[Passage], similarity: np.ndarray) -> list[int]:
    """The passage a sentence without a marker comes from: the one holding most of its words
    (support.best_supported), else the one closest in meaning when the cosine reaches
    ATTRIBUTION_SIMILARITY and it states the sentence's numbers, else none. Words first: a
    small model copies its sources' wording, and on look-alike sources the closest in
    meaning is often a neighbour."""
    if found := best_supported(sentence, [p.text for p in passages]):
        return [found[0]]
    best = int(np.argmax(similarity))
    close = similarity[best] >= ATTRIBUTION_SIMILARITY and numbers_match(sentence, passages[best].text)
    return [best] if close else []


def sentence_similarity(texts: list[str], passages: list[Passage], embedder) -> np.ndarray:
    """(len(texts), len(passages)) cosines: each text against the passage's closest sentence.

    A whole chunk's vector dilutes one fact among several; its sentences do not.
    """
    if not passages or not texts:
        return np.zeros((len(texts), len(passages)), dtype=np.float32)
    pieces = [sentences_or_whole(p.text) for p in passages]
    flat = embedder.encode([piece for group in pieces for piece in group])
    text_vectors = embedder.encode(texts)
    result, row = np.zeros((len(texts), len(passages)), dtype=np.float32), 0
    for j, group in enumerate(pieces):
        result[:, j] = (text_vectors @ flat[row:row + len(group)].T).max(axis=1)
        row += len(group)
    return result


def drop_repeated_sentences(text: str) -> str:
    """Remove a sentence whose words begin an earlier sentence (citation markers aside): a
    repeat, or a repeat cut short, says nothing new, and small models loop. Everything else
    is kept as written."""
    kept, seen, position = [], [], 0
    for m in SENTENCE.finditer(text):
        words = re.findall(r"\w+", MARKER.sub("", m.group()).lower())
        if words and any(earlier[:len(words)] == words for earlier in seen):
            kept.append(text[position:m.start()].rstrip(" "))
        else:
            seen.append(words)
            kept.append(text[position:m.end()])
        position = m.end()
    return re.sub(r"\n{3,}", "\n\n", "".join(kept) + text[position:])


#: A loop: up to LOOP_PERIOD words said three times back to back ("a bird-watching guide, a
#: bird-watching guide, a bird-watching guide"), or a word of four letters or more every second
#: or third word, six times ("15-minute 3-minute 1-minute 2-minute 3-minute 4-minute": the
#: numbers differ, the word does not). Prose and documents do neither.
LOOP_PERIOD, LOOP_STRIDES, LOOP_COUNT = 20, (2, 3), 6


def loop_start(text: str) -> int | None:
    """Where a small model's loop in ``text`` starts to repeat (the second saying of what it
    says again and again), or None for prose."""
    words = list(re.finditer(r"\w+", text))
    tokens = [w.group().lower() for w in words]
    for i, token in enumerate(tokens):
        repeats = next((d for d in range(1, LOOP_PERIOD + 1) if i + 3 * d <= len(tokens)
                        and tokens[i:i + d] == tokens[i + d:i + 2 * d] == tokens[i + 2 * d:i + 3 * d]
                        and any(len(t) >= 3 and not t.isdigit() for t in tokens[i:i + d])), None)   # not "0, 0, 0"
        counts = next((d for d in LOOP_STRIDES if len(token) >= 4 and
                       all(tokens[i + n * d:i + n * d + 1] == [token] for n in range(LOOP_COUNT))), None)
        if repeats or counts:
            start = words[i + (repeats or counts)].start()
            while start > 0 and not text[start - 1].isspace():   # the whole of "3-minute", not "minute"
                start -= 1
            return start
    return None


def cut_loop(text: str) -> str:
    """``text`` up to where it starts to loop, marked as cut ("…"); prose as it is."""
    start = loop_start(text)
    if start is None:
        return text
    head = text[:start].rstrip(" ,;:-\n")
    return head if head.endswith((".", "!", "?", "]")) else head + "…"


def split_sentences(text: str) -> list[str]:
    return [m.group().strip() for m in SENTENCE.finditer(text) if m.group().strip()]


def _with_similarity(passages: list[Passage], question: str, embedder) -> list[Passage]:
    """Fill in cosine(question, passage) where the backend did not (web backends, say)."""
    missing = [i for i, p in enumerate(passages) if p.similarity is None]
    if not missing:
        return passages
    query = embedder.encode([question])[0]
    vectors = embedder.encode([passages[i].text for i in missing])
    passages = list(passages)
    for i, vector in zip(missing, vectors):
        passages[i] = replace(passages[i], similarity=float(vector @ query))
    return passages


def _default_embedder():
    from genlab.ground.embed import load_embedder

    return load_embedder(None)
