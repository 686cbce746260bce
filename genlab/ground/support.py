"""Does one text back another? Word overlap, used three ways by grounding:

* **claims** (`lexical_support`): at least LEXICAL_THRESHOLD of a claim's content words,
  and every number in it, appear in the passage (Vertex AI's default citation threshold);
* **attribution** (`best_supported`): the passage that covers most of an answer sentence's
  content words is the one it is cited to, when it backs the sentence;
* **abstention** (`question_coverage`): the share of a question's content words, weighted by
  rarity in the notebook, that the retrieved passages contain. A question about something
  the sources never mention ("the default stack size of a thread") shares its topic words
  with them, so the best cosine stays high, but its own words are missing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

LEXICAL_THRESHOLD = 0.6
STOPWORDS = frozenset("""a an and are as at be been by can could did do does for from had has have he her his i if
in into is it its may might must my no not of on or our she should so than that the their them then there these
they this those to was we were what when where which who whom why will with would you your
don doesn didn isn aren wasn weren won wouldn shouldn couldn""".split())

#: Words that frame a question rather than name what it asks about ("how *much*", "what
#: *happens*"): a source need not use them to answer it.
QUESTION_WORDS = frozenset("""how much many long often happen happens happened kind mean means way called tell
explain describe exactly once""".split())


def content_words(text: str) -> list[str]:
    """Lower-case words and numbers ("3.25", "1,000"), stop words left out; "the lighthouse's"
    is "lighthouse", "doesn't" is the stop word "doesn"."""
    text = re.sub(r"(?<=[a-z])['’][a-z]+", "", text.lower())
    return [w for w in re.findall(r"[a-z0-9]+(?:[.,:][0-9]+)*", text) if w not in STOPWORDS]


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def stems(text: str, leave_out: frozenset = frozenset()) -> set[str]:
    """The stems of ``text``'s content words, so "deleted" in a question meets "deletion" in a
    passage; a word that only stems to a stop word ("being" → "be") is left out too."""
    words = [w for w in content_words(text) if w not in leave_out]
    return {s for s in _stemmer().stemWords(words) if s not in STOPWORDS}


def words_with_stems(text: str, wanted: tuple[str, ...]) -> list[str]:
    """The words of ``text`` whose stems are ``wanted``, as written (lower case), once each:
    what to show a person instead of a stem ("leaving", not "leav")."""
    words = content_words(text)
    return list(dict.fromkeys(w for w, s in zip(words, _stemmer().stemWords(words)) if s in wanted))


def numbers_match(claim: str, passage: str) -> bool:
    """Every number the claim states is in the passage: "4.75 euros" is not backed by "3.25 euros"."""
    present = set(content_words(passage))
    return all(w in present for w in content_words(claim) if w[0].isdigit())


def coverage(claim: str, passage: str) -> float:
    """Share of the claim's content words found in the passage; 0 when a number of the claim is missing."""
    words = set(content_words(claim))
    if not words or not numbers_match(claim, passage):
        return 0.0
    present = set(content_words(passage))
    return sum(w in present for w in words) / len(words)


def lexical_support(claim: str, passage: str) -> bool:
    """At least LEXICAL_THRESHOLD of the claim's content words, and all its numbers, are in the passage."""
    return coverage(claim, passage) >= LEXICAL_THRESHOLD


def best_supported(claim: str, passages: list[str]) -> tuple[int, float] | None:
    """(index, coverage) of the passage that backs ``claim`` best, or None when none reaches the threshold.
    Ties go to the earlier (better ranked) passage."""
    scores = [coverage(claim, text) for text in passages]
    if not scores:
        return None
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return (best, scores[best]) if scores[best] >= LEXICAL_THRESHOLD else None


@dataclass(frozen=True)
class TermStatistics:
    """How many of a collection's passages contain each stem; rare stems say more about a question."""

    document_frequency: Counter
    passages: int

    @classmethod
    def of(cls, texts: list[str]) -> "TermStatistics":
        return cls(Counter(stem for text in texts for stem in stems(text)), len(texts))

    def weight(self, stem: str) -> float:
        """Inverse document frequency; a stem no passage has gets the largest weight."""
        return math.log((self.passages + 1) / (self.document_frequency.get(stem, 0) + 0.5))


@dataclass(frozen=True)
class Coverage:
    share: float                 # weighted share of the question's stems in the best passage
    unseen: tuple[str, ...]      # stems of the question that no passage of the collection has


def question_coverage(question: str, passages: list[str], statistics: TermStatistics | None = None) -> Coverage:
    """How much of what ``question`` asks about the best of ``passages`` mentions.

    With ``statistics`` (the whole collection's), stems are weighted by rarity and stems
    the collection never uses are reported; without, every stem weighs the same.
    """
    asked = sorted(stems(question, leave_out=QUESTION_WORDS))
    if not asked or not passages:
        return Coverage(0.0 if asked else 1.0, ())
    weight = statistics.weight if statistics else (lambda stem: 1.0)
    total = sum(weight(s) for s in asked)
    share = max(sum(weight(s) for s in asked if s in found) / total for found in map(stems, passages))
    unseen = tuple(s for s in asked if statistics and statistics.document_frequency.get(s, 0) == 0)
    return Coverage(share, unseen)
