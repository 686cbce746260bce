"""One home for genlab's file and database I/O.

- SQLite: `connect` opens every genlab database the same way (created readable by its
  owner only, WAL, a busy timeout, append-only named migrations); `transaction` rolls
  back on any failure, leaving the connection usable; `store_error` turns SQLite's
  errors into one line naming the file and the fix.
- Text: `read_text` reads a user's file as UTF-8, naming the fix when it is not;
  `unicode_problem` finds text in memory that is not (a lone surrogate).
- Folders: `writable_folder` checks, before the work, that an output folder can be made
  and written; `require_empty_folder` refuses one that holds the user's files.
- CSV: `read_csv` yields each row with its line number and names the line of bad quoting
  or a wrong number of fields.
- JSONL: `read_jsonl` yields each object with its line number and names the line of any
  error (`json_object` reads one line, for input that is not a file); `write_jsonl` writes
  rows (UTF-8 kept as is). A long run that saves its work as it goes appends a row at a time
  (`append_jsonl`) and resumes with `resume_jsonl`, which drops a last line cut short.
"""

from __future__ import annotations

import csv
import difflib
import errno
import fcntl
import io
import json
import os
import sqlite3
import time
import types
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

from genlab.errors import ConfigError, StoreError


# -- folders -----------------------------------------------------------------------------

def writable_folder(folder: Path, option: str) -> Path:
    """Check, creating nothing, that this user can make ``folder`` (a command's output) and
    write in it, so that no work is lost to a path only found wrong at the end."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder} is a file; give a folder")
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option}: cannot write in {folder} ({existing} is a file); choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: cannot write in {folder} (this user has no permission in {existing}); "
                          "choose a folder you can write to")
    return folder


def require_empty_folder(folder: Path, option: str, what: str, own: tuple[str, ...] = ()) -> None:
    """Refuse ``folder`` when it already holds files other than genlab's ``own``: ``what`` is
    written under fixed names (config.json, README.md, …) that would replace the user's own
    without a word."""
    names = sorted(p.name for p in folder.iterdir() if p.name not in own) if folder.is_dir() else []
    if names:
        shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
        raise ConfigError(f"{option} {folder} already holds files ({shown}) and {what} would be written over them; "
                          "choose a new or empty folder")


#: The file a process holds (flock) while it writes a folder's store.
HOLD_FILE = ".genlab.lock"


def hold_folder(folder: Path, doing: str) -> IO[str]:
    """Hold ``folder`` for this process until the returned file is closed or the process ends,
    however it ends; another process is refused, naming this one and what it is ``doing``
    there (both are written in the file), rather than writing the same store at once (two
    resumes of one run drew the same prompts, and one died on a UNIQUE constraint after its
    model calls)."""
    handle = open(folder / HOLD_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise ConfigError(f"{folder} is in use: genlab process {holder} there; wait for it to end, "
                          "or stop it") from None
    except OSError:
        pass   # a file system without locks (some network mounts): go on unheld, as before holds
    handle.truncate(0)
    handle.write(f"{os.getpid()} {doing}")
    handle.flush()
    return handle


# -- text files --------------------------------------------------------------------------

def read_text(path: str | Path, error: type[ConfigError] = ConfigError) -> str:
    """A user's text file as text: UTF-8, without the byte order mark some editors write. One
    that cannot be read, or is not UTF-8, raises ``error`` naming the file and the fix."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text (byte {exc.start}); convert it with `iconv -t utf-8` first") from None


def unicode_problem(data: object) -> str | None:
    """Why JSON-shaped ``data`` is not text, or None. A lone UTF-16 surrogate ("\\ud800" in a
    JSON body, or a byte that is not UTF-8 on the command line) is no character: every
    backend fails on it, llama.cpp with a parse error."""
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        return (f"the text holds {exc.object[exc.start:exc.end]!r}, which is not a character (a lone UTF-16 "
                "surrogate, or a byte that is not UTF-8); send UTF-8 text")
    return None


# -- CSV ---------------------------------------------------------------------------------

def read_csv(path: str | Path, what: str = "data file", error: type[ConfigError] = ConfigError
             ) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row keyed by the header) for each non-empty row. Bad quoting, or a
    row with more or fewer fields than the header, raises ``error`` naming ``path:line``
    (Python's reader would take the rest of the file into an unclosed quote, or pad a short
    row with None)."""
    text = read_text(path, error)
    # A field may be as long as the file (a document to summarise): Python's limit of 131,072
    # characters refused it as "not valid CSV", and the whole text is in memory already.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise error(f"{path}: the {what} is empty; its first line names the columns")
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                fix = ('put a field that holds a comma in double quotes ("a, b")' if len(row) > len(header)
                       else "give every column a field (an empty one is nothing between two commas)")
                raise error(f"{path}:{reader.line_num}: {len(row)} field{'s' * (len(row) != 1)} where the header "
                            f"names {len(header)} column{'s' * (len(header) != 1)}; {fix}")
            yield reader.line_num, dict(zip(header, row))
    except csv.Error as exc:
        raise error(f"{path}:{reader.line_num}: not valid CSV ({exc}); a field with a comma, a quote or a "
                    'line break goes in double quotes, with each quote in it doubled ("say ""hi""")') from None


# -- JSONL -------------------------------------------------------------------------------

def read_jsonl(path: str | Path, what: str = "data file", error: type[ConfigError] = ConfigError
               ) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-empty line; a line that is not a JSON object
    raises ``error`` naming ``path:line``."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()   # -sig: a BOM some editors write
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text; the {what} is JSONL (one JSON object a line)") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield number, json_object(line, f"{path}:{number}", error)


def json_object(line: str, where: str, error: type[ConfigError] = ConfigError) -> dict:
    """One line of JSONL as a dict; ``where`` ("file:line") names it in the error."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise error(f"{where}: lists or objects nested too deeply to read; flatten them") from None
    if not isinstance(row, dict):
        raise error(f"{where}: each line must be a JSON object")
    return row


def write_jsonl(rows: Iterable[dict], path: str | Path) -> None:
    """Write one JSON object a line, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one row and flush it, so an interruption loses at most the row being written."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def resume_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """The rows a run appended to ``path`` (none if it does not exist), as `read_jsonl` gives
    them. A last line that an interruption cut short is cut off the file (its row is made
    again), and the file ends in a newline, so the next row appended starts its own line."""
    path = Path(path)
    if not path.exists():
        return []
    text = read_text(path)
    lines = text.splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append((number, json_object(line, f"{path}:{number}")))
            except ConfigError:
                if number != len(lines):
                    raise
                lines.pop()
    if text != (whole := "".join(line + "\n" for line in lines)):
        path.write_text(whole, encoding="utf-8")
    return rows


# -- pydantic -------------------------------------------------------------------------------

#: Parts of pydantic's error path that name a type, not a field (``list[TestSpec]``, ``str``).
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list"}


def validation_problems(exc, model: type | None = None) -> list[tuple[str, str]]:
    """(field path, problem) for each error in a pydantic ValidationError: type tags dropped
    (a discriminated union repeats its tag: response_format.enum.enum), "Value error, " gone.
    Given the validated ``model``, an unknown key is answered with the keys known there."""
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        path = [p for i, p in enumerate(loc)
                if (i == 0 or p != loc[i - 1]) and not (isinstance(p, str) and ("[" in p or p in _TYPE_TAGS))]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and model is not None and (known := _keys_at(model, path[:-1])):
            close = difflib.get_close_matches(str(path[-1]), known, n=1)
            message = (f"unknown key{f' (did you mean {close[0]}?)' if close else ''}; "
                       f"the keys here are {', '.join(known)}")
        problems.append((".".join(map(str, path)), message))
    # A misspelt key is two errors, the key it missed and the key it gave; the second says both.
    return sorted(problems, key=lambda problem: "did you mean" not in problem[1])


def _keys_at(model: type, loc: list) -> list[str]:
    """The keys accepted by the pydantic model found at ``loc`` below ``model`` (through
    fields, list items and optional values); [] where no one model is there."""
    from pydantic import BaseModel

    node: object = model
    for part in (*loc, None):
        options = typing.get_args(node) if typing.get_origin(node) in (typing.Union, types.UnionType) else (node,)
        if isinstance(part, int):
            lists = [o for o in options if typing.get_origin(o) is list]
            if len(lists) != 1:
                return []
            node = typing.get_args(lists[0])[0]
            continue
        models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        if len(models) != 1:
            return []
        fields = models[0].model_fields
        if part is None:
            return [f.alias or name for name, f in fields.items()]
        field = next((f for name, f in fields.items() if part in (name, f.alias)), None)
        if field is None:
            return []
        node = field.annotation
    return []


# -- SQLite ------------------------------------------------------------------------------

def store_error(path: Path, exc: BaseException) -> StoreError:
    """One line naming the file, what SQLite (or the OS) said and the fix."""
    where, message = path, str(exc)
    if isinstance(exc, OSError) and exc.strerror:         # the OS names the path it refused, often a parent
        where, message = exc.filename or path, exc.strerror
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            return StoreError(f"{where}: {message}; a file is where the folder for {path.name} is needed; "
                              "move it, or set GENLAB_HOME (or the run's folder) elsewhere")
    lowered = message.lower()
    if "not a database" in lowered or "malformed" in lowered:
        fix = f"the file is damaged; move it aside (mv {path} {path}.broken) and genlab starts a new one"
    elif "locked" in lowered or "busy" in lowered:
        fix = "another process holds it; wait for it to finish, then retry"
    elif "full" in lowered or "disk i/o" in lowered:
        fix = f"free some space on the disk that holds {path.parent}"
    elif "readonly" in lowered or "read-only" in lowered or "permission" in lowered or "unable to open" in lowered:
        fix = "make it writable, or set GENLAB_HOME to a writable directory"
    else:
        fix = "check the file and the disk"
    return StoreError(f"{where}: {message}; {fix}")


def connect(path: Path, migrations: list[tuple[str, list[str]]], foreign_keys: bool = False) -> sqlite3.Connection:
    """Open (creating, readable by its owner only) a SQLite file of genlab's: autocommit
    mode with explicit transactions, WAL, a busy timeout, foreign keys, migrations applied."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Prompts, replies and sources are the user's data: no other user may read them.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        if foreign_keys:
            db.execute("PRAGMA foreign_keys=ON")
        apply_migrations(db, path, migrations)
    except (OSError, sqlite3.Error) as exc:
        raise store_error(path, exc) from exc
    return db


@contextmanager
def sqlite_errors(path: Path):
    """Turn SQLite's errors inside the block into a StoreError naming the file and the fix."""
    try:
        yield
    except sqlite3.Error as exc:
        raise store_error(path, exc) from exc


@contextmanager
def transaction(db: sqlite3.Connection, path: Path, mode: str = "IMMEDIATE"):
    """One transaction that rolls back on any failure (leaving the connection usable) and
    turns SQLite's errors into a StoreError naming the file."""
    try:
        db.execute(f"BEGIN {mode}")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise store_error(path, exc) from exc


def apply_migrations(db: sqlite3.Connection, path: Path, migrations: list[tuple[str, list[str]]]) -> None:
    """Apply the named migrations not yet recorded in ``_migrations``, each in one transaction.

    ``db`` must be in autocommit mode (isolation_level=None): transactions are explicit.
    """
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    for name, statements in migrations:
        if name in done:
            continue
        with transaction(db, path):
            # Another process may have applied it between our read and the lock.
            if db.execute("SELECT 1 FROM _migrations WHERE name=?", (name,)).fetchone():
                continue
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
