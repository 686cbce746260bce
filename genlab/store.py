"""genlab's SQLite store: one record of every model call, and the response cache.

The schema is an append-only list of named migrations, applied when the file is
opened and recorded in ``_migrations``; a shipped migration is never edited (a
change is a new migration at the end).

The default file is ``$GENLAB_HOME/genlab.db``; ``GENLAB_HOME`` defaults to the
user's data directory (``~/.local/share/genlab`` on Linux).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from genlab.errors import ConfigError, UnknownResponse
from genlab.io import connect, sqlite_errors, transaction


def genlab_home() -> Path:
    """Return genlab's data directory (``GENLAB_HOME`` or the user data dir)."""
    home = os.environ.get("GENLAB_HOME")
    return Path(home).expanduser() if home else Path(platformdirs.user_data_dir("genlab"))


def default_store_path() -> Path:
    return genlab_home() / "genlab.db"


def store_prompts() -> bool:
    """False when GENLAB_STORE_PROMPTS=0: keep call rows (tokens, cost) but no prompt or reply text."""
    return os.environ.get("GENLAB_STORE_PROMPTS", "1").strip().lower() not in ("0", "false", "no", "off")


# (name, statements): append only. Each migration runs in one transaction.
MIGRATIONS: list[tuple[str, list[str]]] = [
    ("001_calls_and_cache", [
        """CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,              -- unix seconds, when the call finished
            model TEXT NOT NULL,             -- the genlab model spec, e.g. local, gemini:gemini-2.5-flash
            request_hash TEXT NOT NULL,      -- sha256 of the canonical request (same key as the cache)
            prompt_tokens INTEGER NOT NULL,  -- includes cached_tokens, as OpenAI and Gemini report it
            cached_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            latency_s REAL NOT NULL,
            cost_usd REAL,                   -- NULL when no price is known for the model
            cache_hit INTEGER NOT NULL DEFAULT 0,
            source TEXT,                     -- who called: cli, serve, evolve, eval…
            error TEXT                       -- NULL on success
        )""",
        "CREATE INDEX calls_time ON calls(time)",
        """CREATE TABLE response_cache (
            key TEXT PRIMARY KEY,            -- sha256 of everything that affects the output
            model TEXT NOT NULL,
            response TEXT NOT NULL,          -- JSON of genlab.models.Response
            created REAL NOT NULL
        )""",
    ]),
    ("002_responses_and_feedback", [
        """CREATE TABLE responses (
            id TEXT NOT NULL,                -- the id the caller saw (chatcmpl-…), one per choice index
            choice_index INTEGER NOT NULL,
            time REAL NOT NULL,
            model TEXT NOT NULL,
            messages TEXT NOT NULL,          -- JSON: the chat messages sent, in OpenAI's shape
            completion TEXT NOT NULL,        -- the assistant's reply
            source TEXT,
            PRIMARY KEY (id, choice_index)
        )""",
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            response_id TEXT NOT NULL,       -- rated response, or the chosen one of a pair
            choice_index INTEGER NOT NULL,
            rating INTEGER,                  -- +1 thumbs up, -1 thumbs down, NULL for a pair
            better TEXT,                     -- a better answer the user wrote (with a rating)
            rejected_id TEXT,                -- pairwise: the response that lost
            rejected_index INTEGER,
            source TEXT,
            FOREIGN KEY (response_id, choice_index) REFERENCES responses(id, choice_index),
            FOREIGN KEY (rejected_id, rejected_index) REFERENCES responses(id, choice_index)
        )""",
    ]),
]


@dataclass(frozen=True)
class CallRecord:
    """One model call, as written to the ``calls`` table."""

    model: str
    request_hash: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float | None
    cache_hit: bool = False
    source: str | None = None
    error: str | None = None


class Store:
    """A SQLite file shared by every part of genlab; safe to use from many threads."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_store_path()
        self._db = connect(self.path, MIGRATIONS)
        self._lock = threading.Lock()

    def execute(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run one statement in its own transaction and return all rows."""
        with self._lock, sqlite_errors(self.path):
            cur = self._db.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()

    # -- calls ---------------------------------------------------------------

    def log_call(self, record: CallRecord) -> None:
        """Write one model call (one row, one transaction)."""
        self.execute(
            "INSERT INTO calls (time, model, request_hash, prompt_tokens, cached_tokens,"
            " completion_tokens, latency_s, cost_usd, cache_hit, source, error)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (time.time(), record.model, record.request_hash, record.prompt_tokens,
             record.cached_tokens, record.completion_tokens, record.latency_s,
             record.cost_usd, int(record.cache_hit), record.source, record.error),
        )

    def usage_by_model_and_day(self, since: float | None = None) -> list[dict[str, Any]]:
        """Totals per (day, model): calls, tokens, cost; newest day first."""
        rows = self.execute(
            "SELECT date(time, 'unixepoch') AS day, model, COUNT(*) AS calls,"
            " SUM(cache_hit) AS cache_hits, SUM(error IS NOT NULL) AS errors,"
            " SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,"
            " SUM(completion_tokens) AS completion_tokens, SUM(cost_usd) AS cost_usd,"
            " SUM(cost_usd IS NULL AND error IS NULL) AS unpriced"
            " FROM calls WHERE time >= ? GROUP BY day, model ORDER BY day DESC, model",
            (since or 0,),
        )
        return [dict(row) for row in rows]

    # -- response cache --------------------------------------------------------

    def cached_response(self, key: str) -> dict | None:
        rows = self.execute("SELECT response FROM response_cache WHERE key=?", (key,))
        return json.loads(rows[0]["response"]) if rows else None

    def cache_response(self, key: str, model: str, response: dict) -> None:
        if not store_prompts():
            return  # a cached reply is reply text
        self.execute(
            "INSERT OR REPLACE INTO response_cache (key, model, response, created) VALUES (?,?,?,?)",
            (key, model, json.dumps(response), time.time()),
        )

    # -- responses and feedback ------------------------------------------------------

    def record_response(self, response_id: str, model: str, messages: list[dict], completions: list[str],
                        source: str | None = None) -> None:
        """Keep a reply (each of its choices) with its prompt, so feedback can point at it
        (nothing is kept under GENLAB_STORE_PROMPTS=0)."""
        if not store_prompts():
            return
        now, prompt = time.time(), json.dumps(messages, ensure_ascii=False)
        with self._lock, transaction(self._db, self.path):
            self._db.executemany(
                "INSERT OR REPLACE INTO responses (id, choice_index, time, model, messages, completion, source)"
                " VALUES (?,?,?,?,?,?,?)",
                [(response_id, i, now, model, prompt, text, source) for i, text in enumerate(completions)])

    def response_exists(self, response_id: str, choice_index: int = 0) -> bool:
        return bool(self.execute("SELECT 1 FROM responses WHERE id=? AND choice_index=?",
                                 (response_id, choice_index)))

    def add_feedback(self, response_id: str, choice_index: int = 0, *, rating: int | None = None,
                     better: str | None = None, rejected_id: str | None = None, rejected_index: int = 0,
                     source: str | None = None) -> int:
        """Store one rating (+1/-1, optionally with a better answer) or one pairwise preference."""
        if rejected_id == response_id and rejected_index == choice_index:
            raise ConfigError(f"the preference names reply '{response_id}' (choice {choice_index}) as both chosen and "
                              "rejected; give two different replies (or two choices of one, by their index)")
        for rid, index in [(response_id, choice_index)] + ([(rejected_id, rejected_index)] if rejected_id else []):
            if not self.response_exists(rid, index):
                off = " (GENLAB_STORE_PROMPTS=0 keeps none)" if not store_prompts() else ""
                raise UnknownResponse(f"no recorded response '{rid}' (choice {index}); feedback can only be given "
                                      f"on replies from genlab chat or genlab serve{off}", param="response_id")
        with self._lock, transaction(self._db, self.path):
            return self._db.execute(
                "INSERT INTO feedback (time, response_id, choice_index, rating, better, rejected_id,"
                " rejected_index, source) VALUES (?,?,?,?,?,?,?,?)",
                (time.time(), response_id, choice_index, rating, better, rejected_id,
                 rejected_index if rejected_id else None, source)).lastrowid

    def feedback_rows(self) -> list[dict[str, Any]]:
        """Every feedback row with its response's prompt and reply (and the loser's, for pairs), oldest first."""
        rows = self.execute(
            "SELECT f.id, f.time, f.rating, f.better, f.source, f.response_id, f.choice_index,"
            " r.messages, r.completion, f.rejected_id, l.completion AS rejected_completion,"
            " l.messages AS rejected_messages"
            " FROM feedback f JOIN responses r ON r.id = f.response_id AND r.choice_index = f.choice_index"
            " LEFT JOIN responses l ON l.id = f.rejected_id AND l.choice_index = f.rejected_index"
            " ORDER BY f.id")
        return [dict(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
