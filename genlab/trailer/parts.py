"""The finished parts of a trailer (storyboard rows, pictures, narrations), in one SQLite
file beside the video, keyed by a hash of everything that made them.

An interrupted trailer resumes where it stopped, and a re-run with the same inputs
(same sources, model, backends and settings) makes nothing again: each part is looked
up before it is made, and stored as soon as it is.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

from genlab.io import connect, sqlite_errors, transaction

MIGRATIONS: list[tuple[str, list[str]]] = [
    ("001_parts", [
        """CREATE TABLE parts (
            key TEXT PRIMARY KEY,        -- sha256 of the stage and its inputs
            stage TEXT NOT NULL,         -- storyboard, picture, narration, video
            value BLOB NOT NULL,         -- JSON for a storyboard row, PNG, WAV; the video's file name
            made REAL NOT NULL
        )""",
    ]),
]


class Parts:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = connect(self.path, MIGRATIONS)
        self.made = dict.fromkeys(("storyboard", "picture", "narration", "video"), 0)
        self.reused = dict.fromkeys(("storyboard", "picture", "narration", "video"), 0)

    def get(self, stage: str, inputs: dict) -> bytes | None:
        with sqlite_errors(self.path):
            row = self._db.execute("SELECT value FROM parts WHERE key=?", (_key(stage, inputs),)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, stage: str, inputs: dict, value: bytes) -> None:
        with transaction(self._db, self.path) as db:
            db.execute("INSERT OR REPLACE INTO parts (key, stage, value, made) VALUES (?, ?, ?, ?)",
                       (_key(stage, inputs), stage, value, time.time()))
        self.made[stage] += 1

    def get_or_make(self, stage: str, inputs: dict, make: Callable[[], bytes]) -> bytes:
        """The stored part for ``inputs``, or ``make()``'s, stored before it is returned."""
        if (value := self.get(stage, inputs)) is not None:
            self.reused[stage] += 1
            return value
        value = make()
        self.put(stage, inputs, value)
        return value

    def close(self) -> None:
        self._db.close()


def _key(stage: str, inputs: dict) -> str:
    return hashlib.sha256(json.dumps([stage, inputs], sort_keys=True).encode()).hexdigest()


def digest(data: bytes) -> str:
    """A short name for a part's bytes, for the inputs of what is made from it."""
    return hashlib.sha256(data).hexdigest()
