"""Search a notebook four ways: BM25 (lexical), dense (cosine), hybrid, and reranked (the default).

Hybrid is reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): each list
gives a chunk 1 / (60 + rank), and the sums rank the union. It needs no score
calibration between BM25 and cosine, which live on different scales.

Reranked takes hybrid's candidates and fuses, the same way, their BM25 ranking with a
ranking by their best *sentence's* cosine with the question. A chunk's one vector averages
its several facts; the question asks about one of them, which its sentence carries
undiluted. On the development half of examples/notebook/pyref-qa.jsonl (60 look-alike
reference pages) this took the right passage's share in the top 4 from 0.93 to 0.99
(bench/ground_hard.py).
"""

from __future__ import annotations

import numpy as np

from genlab.errors import ConfigError
from genlab.ground.notebook import Notebook
from genlab.ground.passage import Passage
from genlab.ground.support import TermStatistics

METHODS = ("bm25", "dense", "hybrid", "reranked")
DEFAULT_METHOD = "reranked"
RRF_K = 60
#: How deep each list goes before fusion.
FUSION_DEPTH = 50


class NotebookSearch:
    """The default search backend: a notebook's chunks, indexed for BM25 and dense search."""

    def __init__(self, notebook: Notebook, method: str = DEFAULT_METHOD):
        if method not in METHODS:
            raise ConfigError(f"unknown retrieval method '{method}'; use {', '.join(METHODS)}")
        self.notebook, self.method = notebook, method
        self.name = f"notebook:{notebook.name}"
        self.methods = METHODS  # the retrievers `genlab notebook eval` compares
        self.chunks, self.vectors = notebook.chunks()
        self._bm25 = None
        self._embedder = None
        self._sentences = None
        self._statistics = None
        self._last_query: tuple[str | None, np.ndarray | None] = (None, None)

    @classmethod
    def open(cls, name: str, method: str = DEFAULT_METHOD) -> "NotebookSearch":
        return cls(Notebook.open(name), method)

    # -- the seam ----------------------------------------------------------------

    def search(self, query: str, k: int = 5, method: str | None = None) -> list[Passage]:
        ranked = self.rank(query, method or self.method, k)
        if not ranked:
            return []
        similarities = self.similarities(query)
        return [Passage(text=c.text, source=c.path, title=c.title, page=c.page, start=c.start, end=c.end,
                        score=score, similarity=float(similarities[i]), chunk_id=c.id)
                for i, score in ranked for c in [self.chunks[i]]]

    def passages(self) -> list[Passage]:
        """Every chunk as a passage, in source order."""
        return [Passage(text=c.text, source=c.path, title=c.title, page=c.page, start=c.start, end=c.end,
                        chunk_id=c.id) for c in self.chunks]

    # -- ranking -----------------------------------------------------------------

    def rank(self, query: str, method: str, k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` (chunk index, score) pairs, best first."""
        if not self.chunks:
            return []
        if method == "bm25":
            return _top(self.bm25_scores(query), k, positive_only=True)
        if method == "dense":
            return _top(self.similarities(query), k)
        if method == "hybrid":
            return self._hybrid(query, self.bm25_scores(query))[:k]
        if method == "reranked":
            return _fuse(self.reranking_lists(query))[:k]
        raise ConfigError(f"unknown retrieval method '{method}'; use {', '.join(METHODS)}")

    def _hybrid(self, query: str, bm25: np.ndarray) -> list[tuple[int, float]]:
        return _fuse([_top(bm25, FUSION_DEPTH, positive_only=True), _top(self.similarities(query), FUSION_DEPTH)])

    def reranking_lists(self, query: str) -> list[list[tuple[int, float]]]:
        """What reranked fuses: hybrid's candidates by BM25 (those it scores), and by their
        best sentence's cosine."""
        bm25 = self.bm25_scores(query)
        candidates = np.array([i for i, _ in self._hybrid(query, bm25)[:FUSION_DEPTH]])
        by_sentence = self.sentence_similarities(query)[candidates]
        return [[(int(candidates[j]), 0.0) for j in np.argsort(-bm25[candidates], kind="stable")
                 if bm25[candidates[j]] > 0],
                [(int(candidates[j]), 0.0) for j in np.argsort(-by_sentence, kind="stable")]]

    def bm25_scores(self, query: str) -> np.ndarray:
        tokenizer, retriever = self._bm25_index()
        ids = tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)[0]
        ids = [i for i in ids if i != tokenizer.get_vocab_dict().get("", -1)]
        if not ids:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return retriever.get_scores(ids)

    def similarities(self, query: str) -> np.ndarray:
        return self.vectors @ self._query_vector(query)   # (n,) cosines: vectors are unit length

    def _query_vector(self, query: str) -> np.ndarray:
        if self._embedder is None:
            from genlab.ground.embed import load_embedder

            self._embedder = load_embedder(self.notebook.embedder_name)
        # One search embeds its query once, though ranking and Passage.similarity both need it.
        if self._last_query[0] != query:
            self._last_query = (query, self._embedder.encode([query])[0])
        return self._last_query[1]

    def sentence_similarities(self, query: str) -> np.ndarray:
        """(n,) the cosine of each chunk's closest sentence with the query."""
        if self._sentences is None:
            owners, vectors = self.notebook.sentence_vectors()   # in chunk order
            chunks, starts = np.unique(owners, return_index=True)
            self._sentences = chunks, starts, vectors
        chunks, starts, vectors = self._sentences
        best = np.full(len(self.chunks), -1.0, dtype=np.float32)
        if len(chunks):
            # A max per run of one chunk's sentences (np.maximum.at is ~50x slower).
            best[chunks] = np.maximum.reduceat(vectors @ self._query_vector(query), starts)
        return best

    def term_statistics(self) -> TermStatistics:
        """How many chunks hold each stem: what the abstention gate weighs a question's words by."""
        if self._statistics is None:
            self._statistics = TermStatistics.of([c.text for c in self.chunks])
        return self._statistics

    def _bm25_index(self):
        if self._bm25 is None:
            import bm25s
            import Stemmer

            tokenizer = bm25s.tokenization.Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))
            ids = tokenizer.tokenize([c.text for c in self.chunks], return_as="ids", show_progress=False)
            retriever = bm25s.BM25()
            retriever.index(ids, show_progress=False)
            self._bm25 = tokenizer, retriever
        return self._bm25


def _fuse(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of (index, score) lists, best first; ties by index."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (i, _) in enumerate(ranking, 1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def _top(scores: np.ndarray, k: int, positive_only: bool = False) -> list[tuple[int, float]]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order if not positive_only or scores[i] > 0]
