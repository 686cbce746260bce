"""A notebook: the user's sources, their chunks and their vectors, in one SQLite file.

``$GENLAB_HOME/notebooks/NAME.db`` holds each source's extracted text (so every chunk's
span can be checked against it), the chunks with page and character offsets, and one
float32 vector per chunk and per sentence of a chunk. The BM25 index is derived from the chunks when a notebook is
searched (it takes milliseconds), so there is one copy of the truth.

Adding reads and checks every file first, so a bad one stops the add before anything is
written; the files are then embedded and written a batch at a time, each batch in one
transaction, so an interrupted add keeps the files it finished (the same add again skips
them) and never leaves half a file. Removing is all or nothing: every source named must
be found before any is deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from genlab.errors import ConfigError
from genlab.ground.sources import Document, chunk_document, read_source, sentences_or_whole, supported
from genlab.io import connect, transaction
from genlab.machine import env_number
from genlab.store import genlab_home

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: Memory a notebook's index may take when loaded (vectors + BM25 + texts), in MB.
DEFAULT_MAX_MB = 1024

MIGRATIONS: list[tuple[str, list[str]]] = [
    ("001_notebook", [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,       -- absolute path of the file when added
            title TEXT NOT NULL,
            kind TEXT NOT NULL,              -- pdf, markdown, text, html
            sha256 TEXT NOT NULL,            -- of the file's bytes
            pages INTEGER NOT NULL,
            text TEXT NOT NULL,              -- extracted text; chunk offsets point into it
            added REAL NOT NULL
        )""",
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
            page INTEGER NOT NULL,           -- 1-based
            start INTEGER NOT NULL,          -- character offsets into sources.text
            end INTEGER NOT NULL,
            text TEXT NOT NULL,
            vector BLOB NOT NULL             -- float32, L2-normalised
        )""",
        "CREATE INDEX chunks_source ON chunks(source_id)",
    ]),
    # One vector per sentence of a chunk (sources.sentences_or_whole): a question about one
    # fact matches its sentence better than the whole chunk's vector, where it is diluted.
    ("002_sentences", [
        """CREATE TABLE sentences (
            id INTEGER PRIMARY KEY,
            chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
            vector BLOB NOT NULL             -- float32, L2-normalised
        )""",
        "CREATE INDEX sentences_chunk ON sentences(chunk_id)",
    ]),
]


def notebooks_dir() -> Path:
    return genlab_home() / "notebooks"


def max_index_mb() -> float:
    return env_number("GENLAB_NOTEBOOK_MAX_MB", DEFAULT_MAX_MB, unit="megabytes")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"notebook name '{name}' is not allowed; use letters, digits, '-', '_' and '.' "
                          "(up to 64, starting with a letter or digit)")
    return name


def list_notebooks() -> list[str]:
    return sorted(p.stem for p in notebooks_dir().glob("*.db"))


@dataclass(frozen=True)
class Source:
    id: int
    path: str
    title: str
    kind: str
    pages: int
    chunks: int
    chars: int
    added: float
    sha256: str

    def on_disk(self) -> str:
        """'indexed' (the file is as it was added), 'changed' (add it again) or 'missing'."""
        try:
            data = Path(self.path).read_bytes()
        except OSError:
            return "missing"
        return "indexed" if hashlib.sha256(data).hexdigest() == self.sha256 else "changed"


@dataclass(frozen=True)
class Chunk:
    id: int
    source_id: int
    path: str
    title: str
    page: int
    start: int
    end: int
    text: str


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     # "path: why", with --skip-bad
    chunks: int = 0
    seconds: float = 0.0


class Notebook:
    """One notebook file. Use `Notebook.create` or `Notebook.open`."""

    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path
        self._db = connect(path, MIGRATIONS, foreign_keys=True)
        self._db.row_factory = sqlite3.Row

    @classmethod
    def create(cls, name: str, embedder: str | None = None) -> "Notebook":
        from genlab.ground.embed import resolve_embedder

        path = notebooks_dir() / f"{check_name(name)}.db"
        if path.exists():
            raise ConfigError(f"notebook '{name}' already exists; add to it with `genlab notebook add {name} FILE`")
        embedder_name, _ = resolve_embedder(embedder)
        path.parent.mkdir(parents=True, exist_ok=True)
        notebook = cls(name, path)
        notebook._db.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [("embedder", embedder_name), ("created", str(time.time()))])
        return notebook

    @classmethod
    def open(cls, name: str) -> "Notebook":
        path = notebooks_dir() / f"{check_name(name)}.db"
        if not path.exists():
            known = ", ".join(list_notebooks()) or "none yet"
            raise ConfigError(f"no notebook named '{name}' (notebooks: {known}); "
                              f"create it with `genlab notebook create {name}`")
        return cls(name, path)

    @staticmethod
    def delete(name: str) -> None:
        path = notebooks_dir() / f"{check_name(name)}.db"
        if not path.exists():
            raise ConfigError(f"no notebook named '{name}' to delete")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    @property
    def embedder_name(self) -> str:
        return self._db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    # -- reading -----------------------------------------------------------------

    def sources(self) -> list[Source]:
        rows = self._db.execute(
            "SELECT s.id, s.path, s.title, s.kind, s.pages, COUNT(c.id) AS chunks, LENGTH(s.text) AS chars,"
            " s.added, s.sha256 FROM sources s LEFT JOIN chunks c ON c.source_id = s.id GROUP BY s.id ORDER BY s.id")
        return [Source(**dict(row)) for row in rows]

    def source_text(self, source_id: int) -> str:
        return self._db.execute("SELECT text FROM sources WHERE id=?", (source_id,)).fetchone()[0]

    def chunks(self) -> tuple[list[Chunk], np.ndarray]:
        """All chunks in a stable order, and their vectors as one (n, dim) float32 array."""
        rows = self._db.execute(
            "SELECT c.id, c.source_id, s.path, s.title, c.page, c.start, c.end, c.text, c.vector"
            " FROM chunks c JOIN sources s ON s.id = c.source_id ORDER BY c.id").fetchall()
        chunks = [Chunk(*row[:8]) for row in rows]
        vectors = (np.stack([np.frombuffer(row["vector"], dtype=np.float32) for row in rows])
                   if rows else np.zeros((0, 0), dtype=np.float32))
        return chunks, vectors

    def sentence_vectors(self, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """(owners, vectors): each sentence's index into `chunks()` and its unit vector, in
        chunk order, so one chunk's sentences are side by side.

        A notebook made before sentences were indexed gets them now, once (``progress``
        as in `add`)."""
        self._index_missing_sentences(progress)
        rank = {row[0]: i for i, row in enumerate(self._db.execute("SELECT id FROM chunks ORDER BY id"))}
        rows = self._db.execute("SELECT chunk_id, vector FROM sentences ORDER BY chunk_id, id").fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return (np.array([rank[row[0]] for row in rows], dtype=np.int64),
                np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows]))

    def _index_missing_sentences(self, progress=None) -> None:
        missing = self._db.execute("SELECT id, text FROM chunks WHERE id NOT IN (SELECT chunk_id FROM sentences)"
                                   " ORDER BY id").fetchall()
        if not missing:
            return
        pieces = [(row["id"], sentence) for row in missing for sentence in sentences_or_whole(row["text"])]
        vectors = self._encode([text for _, text in pieces], "embedding sentences", progress)
        with transaction(self._db, self.path):
            self._db.executemany("INSERT INTO sentences (chunk_id, vector) VALUES (?, ?)",
                                 [(chunk_id, vector.tobytes()) for (chunk_id, _), vector in zip(pieces, vectors)])

    def _encode(self, texts: list[str], stage: str, progress=None, done: int = 0, total: int | None = None
                ) -> np.ndarray:
        """Unit vectors of ``texts``; ``progress(stage, done, total)`` counts from ``done`` of
        ``total`` (default: these texts alone)."""
        from genlab.ground.embed import load_embedder

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        count = [done]

        def step(n: int) -> None:
            count[0] += n
            if progress:
                progress(stage, count[0], total or len(texts))

        return load_embedder(self.embedder_name).encode(texts, progress=step)

    def chunk_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    # -- adding ------------------------------------------------------------------

    def add(self, paths: list[Path], *, skip_bad: bool = False, progress=None) -> AddReport:
        """Add files and folders; re-adding an unchanged file is a no-op, a changed one is re-indexed.

        ``progress(stage, done, total)`` reports reading and embedding.
        """
        started = time.time()
        report = AddReport()
        errors: list[str] = []
        files = expand_paths(paths, errors)
        known = {row["path"]: row["sha256"] for row in self._db.execute("SELECT path, sha256 FROM sources")}
        documents: list[Document] = []
        for i, file in enumerate(files):
            try:
                document = read_source(file)
            except ConfigError as exc:
                errors.append(str(exc))
                continue
            finally:
                if progress:
                    progress("reading", i + 1, len(files))
            key = str(file.resolve())
            if known.get(key) == document.sha256:
                report.unchanged.append(key)
            else:
                (report.updated if key in known else report.added).append(key)
                documents.append(document)
        if errors and not skip_bad:
            raise ConfigError("nothing was added: " + "; ".join(errors)
                              + " (fix or remove the file, or pass --skip-bad to add the rest)")
        report.skipped = errors
        spans = {doc.path: chunk_document(doc) for doc in documents}
        texts = [span.text for doc in documents for span in spans[doc.path]]
        sentences = [sentences_or_whole(text) for text in texts]
        self._check_memory(texts, sum(map(len, sentences)), replaced=report.updated)
        # Embedded and written some files at a time, each batch in one transaction: an
        # interrupted add keeps the files it finished, and the same add again skips them.
        sentences_done, sentences_total = 0, sum(map(len, sentences))
        for batch in _batches(documents, spans):
            first = report.chunks
            batch_texts = texts[first:first + sum(len(spans[doc.path]) for doc in batch)]
            batch_sentences = sentences[first:first + len(batch_texts)]
            pieces = [s for group in batch_sentences for s in group]
            vectors = self._encode(batch_texts, "embedding", progress, first, len(texts))
            sentence_vectors = self._encode(pieces, "embedding sentences", progress, sentences_done, sentences_total)
            self._write(batch, spans, vectors, [len(group) for group in batch_sentences], sentence_vectors)
            sentences_done += len(pieces)
            report.chunks += len(batch_texts)
        report.seconds = time.time() - started
        return report

    def _check_memory(self, texts: list[str], sentences: int, replaced: list[str]) -> None:
        keep = " JOIN sources s ON s.id = c.source_id WHERE s.path NOT IN (%s)" % ",".join("?" * len(replaced))
        rows = self._db.execute("SELECT COUNT(c.id), COALESCE(SUM(LENGTH(c.text)), 0) FROM chunks c" + keep,
                                replaced).fetchone()
        kept_sentences = self._db.execute("SELECT COUNT(*) FROM sentences t JOIN chunks c ON c.id = t.chunk_id"
                                          + keep, replaced).fetchone()[0]
        chunks, chars = rows[0] + len(texts), rows[1] + sum(map(len, texts))
        # Per chunk: a 384-d float32 vector, the text (twice: string and BM25 tokens), bookkeeping;
        # per sentence, one more vector.
        needed_mb = (chunks * (384 * 4 + 300) + (kept_sentences + sentences) * 384 * 4 + 3 * chars) / 2**20
        limit = max_index_mb()
        if needed_mb > limit:
            raise ConfigError(
                f"nothing was added: the notebook would need about {needed_mb:.0f} MB in memory "
                f"({chunks} chunks), over GENLAB_NOTEBOOK_MAX_MB={limit:g}; raise that setting "
                "or split the sources into several notebooks")

    def _write(self, documents: list[Document], spans: dict, vectors: np.ndarray, sentence_counts: list[int],
               sentence_vectors: np.ndarray) -> None:
        row, sentence = 0, 0
        with transaction(self._db, self.path) as db:
            for doc in documents:
                key = str(doc.path.resolve())
                db.execute("DELETE FROM sources WHERE path=?", (key,))   # cascades to its chunks
                source_id = db.execute(
                    "INSERT INTO sources (path, title, kind, sha256, pages, text, added) VALUES (?,?,?,?,?,?,?)",
                    (key, doc.title, doc.kind, doc.sha256, len(doc.pages), doc.text, time.time())).lastrowid
                for span in spans[doc.path]:
                    chunk_id = db.execute(
                        "INSERT INTO chunks (source_id, page, start, end, text, vector) VALUES (?,?,?,?,?,?)",
                        (source_id, span.page, span.start, span.end, span.text, vectors[row].tobytes())).lastrowid
                    db.executemany("INSERT INTO sentences (chunk_id, vector) VALUES (?, ?)",
                                   [(chunk_id, sentence_vectors[i].tobytes())
                                    for i in range(sentence, sentence + sentence_counts[row])])
                    sentence += sentence_counts[row]
                    row += 1

    # -- removing ----------------------------------------------------------------

    def remove(self, refs: list[str]) -> list[Source]:
        """Remove sources, each named by its id (as `genlab notebook sources` lists it), its
        path or its file name, with their chunks and vectors: all of them, or none when one
        names no source or several."""
        sources = self.sources()
        chosen: list[Source] = []
        for ref in refs:
            path = str(Path(ref).expanduser().resolve())
            matches = ([s for s in sources if ref == str(s.id) or s.path == path]
                       or [s for s in sources if Path(s.path).name == ref])
            if len(matches) != 1:
                known = ", ".join(f"{s.id} {Path(s.path).name}" for s in sources[:10])
                known += ", …" if len(sources) > 10 else ""
                problem = "names several sources; give the id or the whole path" if matches else "is not a source here"
                raise ConfigError(f"nothing was removed: {ref!r} {problem} (sources: {known or 'none'})")
            if matches[0] not in chosen:
                chosen.append(matches[0])
        with transaction(self._db, self.path):      # cascades to the chunks and their sentences
            self._db.executemany("DELETE FROM sources WHERE id=?", [(s.id,) for s in chosen])
        return chosen


#: Files are written to the notebook in batches of about this many chunks: the most work an
#: interruption can lose, unless one file alone has more (a source is added whole or not at all).
BATCH_CHUNKS = 128


def _batches(documents: list[Document], spans: dict) -> Iterator[list[Document]]:
    batch: list[Document] = []
    size = 0
    for doc in documents:
        batch.append(doc)
        size += len(spans[doc.path])
        if size >= BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def expand_paths(paths: list[Path], errors: list[str] | None = None) -> list[Path]:
    """Files as given, and the supported files inside folders (recursively, sorted, no hidden
    ones, symbolic links to folders not followed; in a git work tree, none that git ignores).
    A folder inside that cannot be read is an error; with ``errors``, its message goes there
    instead and the rest is returned."""
    files: list[Path] = []
    unreadable: list[str] = []
    for path in map(Path, paths):
        if path.is_dir() and (listed := _git_listed(path)) is not None:
            files += sorted(file for file in listed if supported(file) and file.is_file()
                            and not any(part.startswith(".") for part in file.relative_to(path).parts))
        elif path.is_dir():
            found = []
            for folder, folders, names in os.walk(path, onerror=lambda exc: unreadable.append(
                    f"{exc.filename}: cannot read this folder ({exc.strerror}); let this user read it, or leave it out")):
                folders[:] = [name for name in folders if not name.startswith(".")]
                found += [Path(folder, name) for name in names if not name.startswith(".") and supported(Path(name))]
            files += sorted(found)
        elif path.exists():
            files.append(path)
        elif re.match(r"[a-z][a-z0-9+.-]*:/", str(path)):      # a URL (Path turned // into /)
            raise ConfigError(f"{str(path).replace(':/', '://', 1)}: genlab reads files on this machine and "
                              "downloads nothing; save the page or file and give its path")
        else:
            raise ConfigError(f"{path}: no such file or folder")
    if unreadable:
        if errors is None:
            raise ConfigError("; ".join(unreadable))
        errors += unreadable
    if not files:
        raise ConfigError("no PDF, Markdown, text or HTML files found in " + ", ".join(map(str, paths))
                          + "".join(f" ({message})" for message in unreadable))
    seen, unique = set(), []
    for file in files:
        if (key := file.resolve()) not in seen:
            seen.add(key)
            unique.append(file)
    return unique


def _git_listed(folder: Path) -> list[Path] | None:
    """The files in ``folder`` that git does not ignore (tracked, or new), so that a code
    base's build outputs, caches and run results stay out; None where git cannot say (no
    git, not a work tree) or where ``folder`` is itself ignored: then all of it is read."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        if subprocess.run([git, "-C", str(folder), "check-ignore", "-q", "."], capture_output=True,
                          timeout=30).returncode != 1:    # 0: the folder is ignored; 128: not in a work tree
            return None
        listed = subprocess.run([git, "-C", str(folder), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                capture_output=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [folder / name for name in os.fsdecode(listed).split("\0") if name]
