"""What a search backend returns (`Passage`) and what it must offer (`SearchBackend`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from genlab.errors import ConfigError


@dataclass(frozen=True)
class Passage:
    """One retrieved passage: where it comes from, its exact span, and how it ranked."""

    text: str
    source: str                  # file path or URI
    title: str
    page: int | None = None      # 1-based, for paged sources
    start: int = 0               # character offsets into the source's text
    end: int = 0
    score: float = 0.0           # the backend's own ranking score
    similarity: float | None = None   # cosine(query, passage) when known; used to decide relevance
    chunk_id: int | None = None

    @property
    def where(self) -> str:
        """"Title" or "Title, page N" for paged sources, for people to read."""
        return f"{self.title}, page {self.page}" if self.page and self.source.lower().endswith(".pdf") else self.title


@runtime_checkable
class SearchBackend(Protocol):
    """What answering needs. A backend that also has ``passages()`` (every passage it holds,
    in source order) can make briefings, FAQs and audio overviews and be evaluated."""

    name: str

    def search(self, query: str, k: int) -> list[Passage]:
        """Return up to ``k`` passages, best first."""
        ...


def all_passages(search: SearchBackend, purpose: str) -> list[Passage]:
    """Every passage ``search`` holds, through its optional ``passages()`` method."""
    if not callable(getattr(search, "passages", None)):
        raise ConfigError(f"the search backend {search.name} has no passages() method, which {purpose} needs "
                          "(it must see every passage, not only search results); add one that returns them "
                          "in source order")
    return list(search.passages())


def display_name(search: SearchBackend) -> str:
    """'velmora' for notebook:velmora; other backends by their name."""
    return search.name.removeprefix("notebook:")
