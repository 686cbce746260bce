"""Cut documents into the segments a trailer's scenes are drawn from, along their own structure.

A heading starts a segment: a Markdown ``#`` line, a line such as "Chapter 3" or "Part II",
or, in a PDF, a page's first line when it is short and does not end a sentence (how a
chapter or section title sits on its page). A document without any is cut into windows of
about `WINDOW_CHARS`. When there are more segments than scenes, neighbours are merged into
runs of similar length, so the scenes always cover the whole of every document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genlab.errors import ConfigError
from genlab.ground.sources import Document

WINDOW_CHARS = 1500
#: A PDF page's first line counts as a heading only when it is at most this long.
HEADING_MAX_CHARS = 60
_NAMED_HEADING = re.compile(r"(?i)^\s*(chapter|part|section|book|act)\s+([0-9]+|[ivxlc]+|[a-z]+)\b")
MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Segment:
    source: str                    # the document's file name
    title: str                     # its heading, or the document's title for a window
    text: str
    pages: tuple[int, ...]         # 1-based pages the text lies on; () when it spans several sources

    @property
    def where(self) -> str:
        """'guide.pdf, pages 2-3': what a citation to this segment says."""
        if not self.pages:
            return self.source
        if len(self.pages) == 1:
            return f"{self.source}, page {self.pages[0]}"
        return f"{self.source}, pages {self.pages[0]}-{self.pages[-1]}"


def segments(documents: list[Document], scenes: int) -> list[Segment]:
    """At most ``scenes`` segments, in reading order, that together cover every document."""
    if scenes < 1:
        raise ConfigError("--scenes must be at least 1")
    found = [s for document in documents for s in document_segments(document, scenes)]
    if not found:
        raise ConfigError("the sources have no text to make scenes from; add text to them")
    return merge(found, scenes)


def document_segments(document: Document, scenes: int) -> list[Segment]:
    """The document cut at its headings, or into windows where it has none.

    Only the top heading levels are used when they alone give ``scenes`` segments (a
    README's ``##`` sections, not every ``####``)."""
    headings = _headings(document)
    levels = sorted({level for _, _, level in headings})
    depth = next((lv for lv in levels if sum(h[2] <= lv for h in headings) >= scenes), levels[-1] if levels else 0)
    starts = [(offset, title) for offset, title, level in headings if level <= depth]
    if not starts:
        starts = [(start, document.title) for start in _window_starts(document.text)]
    elif starts[0][0] > 0 and document.text[:starts[0][0]].strip():
        starts.insert(0, (0, document.title))        # text before the first heading
    bounds = [start for start, _ in starts[1:]] + [len(document.text)]
    cut = []
    for (start, title), end in zip(starts, bounds):
        text = document.text[start:end].strip()
        if text:
            pages = tuple(p.number for p in document.pages if p.start < end and p.end > start) or (1,)
            cut.append(Segment(document.path.name, title, text, pages))
    return cut


def merge(found: list[Segment], scenes: int) -> list[Segment]:
    """Merge neighbouring segments into at most ``scenes`` runs of similar length.

    Each source gets scenes in proportion to its length (at least one), and its segments
    are merged within it; only when there are more sources than scenes do whole sources
    share a scene.
    """
    if len(found) <= scenes:
        return found
    sources: list[list[Segment]] = []
    for segment in found:
        if sources and sources[-1][-1].source == segment.source:
            sources[-1].append(segment)
        else:
            sources.append([segment])
    if len(sources) >= scenes:
        return [_joined([s for source in run for s in source]) for run in _balanced(sources, scenes)]
    shares = [1] * len(sources)
    for _ in range(scenes - len(sources)):
        open_ = [i for i, source in enumerate(sources) if shares[i] < len(source)]
        best = max(open_, key=lambda i: _chars(sources[i]) / shares[i])
        shares[best] += 1
    return [_joined([s for unit in run for s in unit])
            for source, share in zip(sources, shares) for run in _balanced([[s] for s in source], share)]


def _chars(segments_: list[Segment]) -> int:
    return sum(len(s.text) for s in segments_)


def _balanced(units: list[list[Segment]], runs: int) -> list[list[list[Segment]]]:
    """Cut ``units`` (kept whole, in order) into ``runs`` contiguous runs of similar length:
    a unit joins the open run while the run's middle stays within its share of what is left."""
    cut: list[list[list[Segment]]] = []
    left = sum(_chars(u) for u in units)
    for i, unit in enumerate(units):
        unopened = runs - len(cut)
        run_chars = sum(_chars(u) for u in cut[-1]) if cut else 0
        if not cut or (unopened and (len(units) - i <= unopened
                                     or run_chars + _chars(unit) / 2 > (run_chars + left) / (unopened + 1))):
            cut.append([unit])
        else:
            cut[-1].append(unit)
        left -= _chars(unit)
    return cut


def _joined(run: list[Segment]) -> Segment:
    if len(run) == 1:
        return run[0]
    sources = list(dict.fromkeys(s.source for s in run))
    title = f"{run[0].title} and {run[1].title}" if len(run) == 2 else f"{run[0].title}, and more"
    pages = tuple(sorted({p for s in run for p in s.pages})) if len(sources) == 1 else ()
    return Segment(", ".join(sources), title, "\n\n".join(s.text for s in run), pages)


def _headings(document: Document) -> list[tuple[int, str, int]]:
    """(offset, title, level) of each heading line in the document, in order."""
    starts: dict[int, tuple[str, int]] = {}
    offset, in_code = 0, False
    for line in document.text.splitlines(keepends=True):
        text = line.strip()
        if document.kind == "markdown" and text.startswith(("```", "~~~")):
            in_code = not in_code          # a '# comment' in a code block is no heading
        elif in_code:
            pass
        elif document.kind == "markdown" and (match := MARKDOWN_HEADING.match(line)):
            starts[offset] = match.group(2), len(match.group(1))
        elif text and len(text) <= HEADING_MAX_CHARS and _NAMED_HEADING.match(text):
            starts[offset] = text, 1
        offset += len(line)
    if document.kind == "pdf" and len(document.pages) > 1:
        for page in document.pages:
            body = document.text[page.start:page.end]
            first = next((line.strip() for line in body.splitlines() if line.strip()), "")
            if first and len(first) <= HEADING_MAX_CHARS and first[-1] not in ".,;:!?\"'":
                starts.setdefault(page.start + body.index(first), (first, 1))
    return [(offset, title, level) for offset, (title, level) in sorted(starts.items())]


def _window_starts(text: str) -> list[int]:
    """Offsets that cut ``text`` into windows of about WINDOW_CHARS, at paragraph or sentence ends."""
    starts, position = [0], 0
    while len(text) - position > WINDOW_CHARS * 1.5:
        target = position + WINDOW_CHARS
        cut = max(text.rfind("\n\n", position, target), text.rfind(". ", position, target))
        position = cut + 2 if cut > position else target
        starts.append(position)
    return starts
