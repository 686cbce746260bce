"""A program-search run on disk: ``RUN_DIR/run.db`` (SQLite), written as work completes.

A prompt and all its samples are saved in one transaction when the model answers
(samples start ``pending``); each evaluation is saved in one transaction that also
assigns its place in the registration order. Resuming replays that order into a
fresh database and evaluates what is still pending, so a crash or ``kill -9``
loses no sample and duplicates none.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import ConfigError
from genlab.io import HOLD_FILE, connect, hold_folder, sqlite_errors, transaction

SCHEMA = [
    ("001_run", [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,          -- the prompt index (drives the database's choices)
            island INTEGER NOT NULL,
            parent_ids TEXT NOT NULL,        -- JSON list of sample ids shown, ascending by score
            text TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_tokens INTEGER, cached_tokens INTEGER, completion_tokens INTEGER,
            cost_usd REAL, latency_s REAL,
            created REAL NOT NULL
        )""",
        """CREATE TABLE samples (
            id INTEGER PRIMARY KEY,
            prompt_id INTEGER,               -- NULL for the spec's seed function
            choice INTEGER NOT NULL,         -- index among the prompt's samples
            island INTEGER,                  -- NULL for the seed (registered on every island)
            parent_ids TEXT NOT NULL,
            raw TEXT,                        -- the model's answer
            code TEXT,                       -- the extracted function; NULL when discarded
            status TEXT NOT NULL,            -- pending, discarded, evaluated
            error_kind TEXT,                 -- why it was discarded or scored on no input
            errors TEXT,                     -- JSON {input: "kind: message"}
            scores TEXT,                     -- JSON {input: score}
            score REAL,                      -- mean over scored inputs; NULL if none
            eval_s REAL,
            model TEXT,
            prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL,  -- share of the prompt's call
            registered_seq INTEGER UNIQUE,   -- order of registration in the programs database
            created REAL NOT NULL,
            evaluated REAL,
            UNIQUE (prompt_id, choice)
        )""",
    ]),
    # Grammar-constrained sampling: 1 when the prompt's samples were drawn under the body grammar.
    ("002_constrained", ["ALTER TABLE prompts ADD COLUMN constrained INTEGER NOT NULL DEFAULT 0"]),
    # A program whose literals genlab tuned (tune.py): the sample it was tuned from. Its row has
    # no prompt (the model did not write it), so the seed is the row with neither.
    ("003_tuned", ["ALTER TABLE samples ADD COLUMN tuned_from INTEGER"]),
]

#: Which rows are the spec's seed, the model's samples, and programs genlab tuned.
SEED = "prompt_id IS NULL AND tuned_from IS NULL"
DRAWN = "prompt_id IS NOT NULL"
TUNED = "tuned_from IS NOT NULL"


@dataclass
class SampleRow:
    id: int
    prompt_id: int | None
    island: int | None
    parent_ids: list[int]
    code: str | None
    status: str
    error_kind: str | None
    scores: dict[str, float]
    score: float | None
    registered_seq: int | None


class RunStore:
    """The SQLite file of one run; safe to use from many threads."""

    def __init__(self, run_dir: Path, create: bool, hold: bool = False):
        """``hold``: this process runs the search, and no other may while it does (until
        `release`); reading a run (show, best, report) needs no hold."""
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "run.db"
        if create:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise ConfigError(f"no run at {self.run_dir} (no run.db); give the directory a run was started in")
        self._hold = hold_folder(self.run_dir, "runs genlab evolve") if hold else None
        self._db = connect(self.path, SCHEMA)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def release(self) -> None:
        """Let another process run the search again."""
        if self._hold is not None:
            self._hold.close()
            self._hold = None

    def remove(self, remove_dir: bool) -> None:
        """Close and delete the run's database (and its folder, when ``remove_dir`` and empty)."""
        self.close()
        for path in (*(f"{self.path}{suffix}" for suffix in ("", "-wal", "-shm")), self.run_dir / HOLD_FILE):
            Path(path).unlink(missing_ok=True)
        if remove_dir:
            try:
                self.run_dir.rmdir()
            except OSError:
                pass   # something else is in it

    def _transaction(self, statements: list[tuple[str, tuple]]) -> list[int]:
        with self._lock, transaction(self._db, self.path):
            return [self._db.execute(sql, params).lastrowid for sql, params in statements]

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock, sqlite_errors(self.path):
            return self._db.execute(sql, params).fetchall()

    # -- meta ---------------------------------------------------------------------

    def set_meta(self, values: dict[str, Any]) -> None:
        self._transaction([("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
                           for k, v in values.items()])

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.query("SELECT key, value FROM meta")}

    # -- writes -------------------------------------------------------------------

    def add_seed(self, code: str) -> int:
        return self._transaction([(
            "INSERT INTO samples (prompt_id, choice, island, parent_ids, code, status, model, created)"
            " VALUES (NULL, 0, NULL, '[]', ?, 'pending', 'seed', ?)", (code, time.time()))])[0]

    def add_prompt(self, prompt_id: int, island: int, parent_ids: list[int], text: str, model: str,
                   usage: dict, drafts: list[dict], constrained: bool = False) -> list[int]:
        """Save a prompt and its samples together; return the samples' ids."""
        now = time.time()
        n = max(len(drafts), 1)
        statements = [(
            "INSERT INTO prompts (id, island, parent_ids, text, model, prompt_tokens, cached_tokens,"
            " completion_tokens, cost_usd, latency_s, created, constrained) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (prompt_id, island, json.dumps(parent_ids), text, model, usage["prompt_tokens"], usage["cached_tokens"],
             usage["completion_tokens"], usage["cost_usd"], usage["latency_s"], now, int(constrained)))]
        for choice, draft in enumerate(drafts):
            statements.append((
                "INSERT INTO samples (prompt_id, choice, island, parent_ids, raw, code, status, error_kind, errors,"
                " model, prompt_tokens, completion_tokens, cost_usd, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (prompt_id, choice, island, json.dumps(parent_ids), draft["raw"], draft["code"],
                 "pending" if draft["code"] else "discarded", draft["error_kind"],
                 json.dumps({"sample": draft["error"]}) if draft["error"] else None, model,
                 round(usage["prompt_tokens"] / n), round(usage["completion_tokens"] / n),
                 None if usage["cost_usd"] is None else usage["cost_usd"] / n, now)))
        return self._transaction(statements)[1:]

    def add_tuned(self, tuned_from: int, island: int, code: str, scores: dict, score: float, eval_s: float,
                  registered_seq: int) -> int:
        """Save a program tuned from sample ``tuned_from``, scored and registered."""
        now = time.time()
        return self._transaction([(
            "INSERT INTO samples (prompt_id, choice, island, parent_ids, code, status, scores, score, eval_s, model,"
            " registered_seq, created, evaluated, tuned_from) VALUES (NULL, 0, ?, ?, ?, 'evaluated', ?, ?, ?,"
            " 'tuned', ?, ?, ?, ?)",
            (island, json.dumps([tuned_from]), code, json.dumps(scores), score, eval_s, registered_seq, now, now,
             tuned_from))])[0]

    def save_evaluation(self, sample_id: int, scores: dict, errors: dict, error_kind: str | None,
                        score: float | None, eval_s: float, registered_seq: int | None) -> None:
        self._transaction([(
            "UPDATE samples SET status='evaluated', scores=?, errors=?, error_kind=?, score=?, eval_s=?,"
            " registered_seq=?, evaluated=? WHERE id=?",
            (json.dumps(scores), json.dumps(errors) if errors else None, error_kind, score, eval_s,
             registered_seq, time.time(), sample_id))])

    # -- reads --------------------------------------------------------------------

    def samples(self, where: str = "1", params: tuple = (), order: str = "id") -> list[SampleRow]:
        rows = self.query(f"SELECT * FROM samples WHERE {where} ORDER BY {order}", params)
        return [SampleRow(r["id"], r["prompt_id"], r["island"], json.loads(r["parent_ids"]), r["code"],
                          r["status"], r["error_kind"], json.loads(r["scores"]) if r["scores"] else {},
                          r["score"], r["registered_seq"]) for r in rows]

    def counts(self) -> dict[str, Any]:
        row = self.query(
            "SELECT COUNT(*) AS samples, SUM(status!='pending') AS evaluated, SUM(status='pending') AS pending,"
            f" SUM(score IS NOT NULL) AS valid FROM samples WHERE {DRAWN}")[0]
        found = self.query("SELECT MAX(score) AS best, MAX(registered_seq) AS last_seq"
                           f" FROM samples WHERE {DRAWN} OR {TUNED}")[0]
        tuned = self.query(f"SELECT COUNT(*) AS tuned FROM samples WHERE {TUNED}")[0]
        usage = self.query("SELECT COUNT(*) AS prompts, SUM(prompt_tokens) AS prompt_tokens,"
                           " SUM(completion_tokens) AS completion_tokens, SUM(cost_usd) AS cost_usd,"
                           " MAX(id) AS last_prompt FROM prompts")[0]
        return {**dict(row), "best": found["best"], "last_seq": found["last_seq"], "tuned": tuned["tuned"],
                **dict(usage)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.release()
