"""Notebook outputs: a briefing doc, an FAQ and a two-host audio-overview script, each
grounded in the notebook's sources with citations.

Each is built from small grounded steps rather than one long generation, so that any
model, the 135M embedded one included, produces a document whose every cited sentence
points at a passage:

* briefing: per source, its opening passages summarised with citations;
* FAQ: per passage picked across sources, the model writes one question the passage
  answers, and the question is then answered by `ask` over the whole notebook (questions
  whose answer abstains or cites nothing are dropped);
* audio script: an introduction, then the FAQ as a conversation (host A asks, host B
  answers from the sources), then a closing line. The frame lines are genlab's; the
  questions and answers are the model's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from genlab.ground.answer import GroundedAnswer, answer_from, ask
from genlab.ground.passage import Passage, SearchBackend, all_passages, display_name
from genlab.models import Model

BRIEFING_INSTRUCTION = ("Summarise the key facts in the numbered sources in two or three sentences. After each "
                        "sentence, write the number of the source it comes from in square brackets, like [1].")
QUESTION_PROMPT = ("Passage:\n{passage}\n\nWrite one short question that this passage answers. "
                   "Reply with the question only.")
HOSTS = ("Alex", "Sam")


@dataclass
class Section:
    heading: str
    answer: GroundedAnswer


@dataclass
class GroundedDocument:
    """Sections of grounded text; citations numbered across the whole document."""

    title: str
    sections: list[Section] = field(default_factory=list)

    def citations(self) -> list[Passage]:
        """Every cited passage once, in order of first citation: [1] is the first."""
        seen: dict[tuple, Passage] = {}
        for section in self.sections:
            for support in section.answer.supports:
                for i in support.chunk_indices:
                    p = section.answer.chunks[i]
                    seen.setdefault(_key(p), p)
        return list(seen.values())

    def numbering(self, section: Section):
        """Chunk index in ``section``'s answer → its document-wide citation number."""
        numbers = {_key(p): n for n, p in enumerate(self.citations(), 1)}
        return lambda i: numbers[_key(section.answer.chunks[i])]

    def section_text(self, section: Section) -> str:
        """The section's answer with document-wide [n] markers at each support's end."""
        return section.answer.with_markers(self.numbering(section))

    def to_markdown(self, question_headings: bool = False) -> str:
        lines = [f"# {self.title}", ""]
        for section in self.sections:
            lines += [f"## {section.heading}" if not question_headings else f"**Q: {section.heading}**", "",
                      ("A: " if question_headings else "") + self.section_text(section), ""]
        lines += ["## Sources", ""]
        for n, p in enumerate(self.citations(), 1):
            lines.append(f"[{n}] {p.where}, characters {p.start}–{p.end}: \"{_snippet(p.text)}\"")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"title": self.title, "sections": [{"heading": s.heading, **s.answer.to_dict()} for s in self.sections]}


def _key(passage: Passage) -> tuple:
    return passage.source, passage.start, passage.end


def _snippet(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def briefing(model: Model, search: SearchBackend, *, passages_per_source: int = 3, progress=None) -> GroundedDocument:
    """Summarise each source's opening passages, with citations."""
    document = GroundedDocument(f"Briefing: {display_name(search)}")
    by_source = _passages_by_source(search, "a briefing")
    for done, (title, passages) in enumerate(by_source.items(), 1):
        answer = answer_from(model, "Summarise these sources.", passages[:passages_per_source],
                             instruction=BRIEFING_INSTRUCTION, max_tokens=200)
        document.sections.append(Section(title, answer))
        if progress:
            progress(done, len(by_source))
    return document


#: Passages tried per wanted FAQ item: a question the model writes may not be answerable.
ATTEMPTS_PER_ITEM = 3


def faq(model: Model, search: SearchBackend, *, items: int = 6, k: int = 4, progress=None) -> GroundedDocument:
    """Up to ``items`` questions the sources answer, each answered with citations.

    A question whose answer abstains or has no supported sentence, or that repeats an
    earlier one, is dropped and the next passage tried (at most ATTEMPTS_PER_ITEM passages per item).
    """
    document = GroundedDocument(f"FAQ: {display_name(search)}")
    asked = set()
    for passage in _spread(search, ATTEMPTS_PER_ITEM * items):
        question = the_question(model.chat(QUESTION_PROMPT.format(passage=" ".join(passage.text.split())),
                                           temperature=0, max_tokens=60, cache=True).text)
        if question and question.lower() not in asked:
            asked.add(question.lower())
            # The question was written from a passage, so the coverage gate (meant for a
            # user's questions, which may lie beyond the sources) is off; the answer must
            # still have a supported sentence of the model's own (no quote in its place).
            answer = ask(model, search, question, k=k, min_coverage=0, quote=False)
            if answer.supports:          # neither an abstention nor an answer no passage backs
                document.sections.append(Section(question, answer))
                if progress:
                    progress(len(document.sections), items)
                if len(document.sections) == items:
                    break
    return document


def the_question(reply: str) -> str:
    """The question a reply asks: its first line, and of several questions there the
    longest ("What is the answer to this question? What is the name of the island …?")."""
    lines = reply.strip().splitlines()
    first = lines[0].strip().strip('"') if lines else ""
    asked = [q.strip() for q in re.findall(r"[^?]*\?", first)]
    return max(asked, key=len) if len(asked) > 1 else first


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str                                   # what is spoken (no citation markers)
    citations: tuple[int, ...] = ()             # 1-based, into the document's citations


def audio_script(model: Model, search: SearchBackend, *, items: int = 4, progress=None) -> tuple[list[Turn], GroundedDocument]:
    """A two-host conversation over the FAQ; returns the turns and the grounded FAQ behind them."""
    questions = faq(model, search, items=items, progress=progress)
    titles = list(_passages_by_source(search, "an audio overview"))
    host, guest = HOSTS
    turns = [Turn(host, f"Welcome to this overview of the notebook {display_name(search)}. "
                        f"Today we are looking at {_join(titles)}."),
             Turn(guest, "Thanks. Everything I say comes from these sources, so let's dig in.")]
    for section in questions.sections:
        number = questions.numbering(section)
        cited = sorted({number(i) for s in section.answer.supports for i in s.chunk_indices})
        turns += [Turn(host, section.heading), Turn(guest, section.answer.answer, tuple(cited))]
    turns.append(Turn(host, "That's all for this overview. Thanks for listening."))
    return turns, questions


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else "nothing yet"


def _passages_by_source(search: SearchBackend, purpose: str) -> dict[str, list[Passage]]:
    grouped: dict[str, list[Passage]] = {}
    for passage in all_passages(search, purpose):
        grouped.setdefault(passage.title, []).append(passage)
    return grouped


def _spread(search: SearchBackend, count: int) -> list[Passage]:
    """``count`` passages taken in turn from each source (first passages first)."""
    groups = list(_passages_by_source(search, "an FAQ").values())
    picked, depth = [], 0
    while len(picked) < count and any(depth < len(g) for g in groups):
        picked += [g[depth] for g in groups if depth < len(g)]
        depth += 1
    return picked[:count]
