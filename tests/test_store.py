"""The SQLite store: migrations, call records, usage totals, response cache; and the JSONL
files that long runs append to and resume from."""

import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from genlab.errors import ConfigError, StoreError
from genlab.io import append_jsonl, read_jsonl, resume_jsonl
from genlab.store import MIGRATIONS, CallRecord, Store


def record(model="local", tokens=(10, 4, 5), cost=0.0, **kw) -> CallRecord:
    return CallRecord(model=model, request_hash="h", prompt_tokens=tokens[0], cached_tokens=tokens[1],
                      completion_tokens=tokens[2], latency_s=0.1, cost_usd=cost, **kw)


def test_migrations_recorded_once(tmp_path):
    path = tmp_path / "g.db"
    Store(path).close()
    Store(path).close()  # reopening applies nothing twice
    names = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM _migrations")]
    assert names == [name for name, _ in MIGRATIONS]


def test_usage_totals_by_model_and_day(store):
    store.log_call(record())
    store.log_call(record(tokens=(20, 0, 7)))
    store.log_call(record(model="gemini:gemini-2.5-flash", cost=0.25))
    store.log_call(record(model="http://x/v1#m", cost=None))
    store.log_call(record(model="local", error="boom", tokens=(0, 0, 0)))
    rows = {r["model"]: r for r in store.usage_by_model_and_day()}
    assert rows["local"]["calls"] == 3 and rows["local"]["errors"] == 1
    assert (rows["local"]["prompt_tokens"], rows["local"]["cached_tokens"], rows["local"]["completion_tokens"]) == (30, 4, 12)
    assert rows["gemini:gemini-2.5-flash"]["cost_usd"] == 0.25
    assert rows["http://x/v1#m"]["unpriced"] == 1


def test_response_cache_roundtrip(store):
    assert store.cached_response("k") is None
    store.cache_response("k", "local", {"text": "hello"})
    assert store.cached_response("k") == {"text": "hello"}


# -- failures: nothing lost, one line with the fix ------------------------------------------


def test_a_failed_write_rolls_back_and_leaves_the_store_usable(store):
    with pytest.raises(StoreError, match=str(store.path)):
        # The second choice cannot be bound: the first must not stay behind half-written.
        store.record_response("chatcmpl-x", "local", [{"role": "user", "content": "hi"}], ["one", {"not": "text"}])
    assert store.execute("SELECT COUNT(*) AS n FROM responses")[0]["n"] == 0
    store.record_response("chatcmpl-y", "local", [{"role": "user", "content": "hi"}], ["fine"])
    assert store.response_exists("chatcmpl-y")


def test_a_file_where_the_home_folder_should_be_is_one_plain_line(tmp_path):
    from genlab.store import Store

    blocker = tmp_path / "home"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError) as refused:
        Store(blocker / "genlab.db")
    assert str(refused.value).startswith(f"{blocker}: ") and "a file is where the folder for genlab.db is needed" \
        in str(refused.value) and "Errno" not in str(refused.value)


def test_a_locked_store_names_the_file_and_the_reply_is_not_lost(local, store, caplog):
    store._db.execute("PRAGMA busy_timeout=50")
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked.*another process holds it"):
            store.log_call(record())
        with caplog.at_level(logging.WARNING, logger="genlab.models"):
            reply = local.chat("Say hi", max_tokens=3, temperature=0)
        assert reply.text and "was not logged" in caplog.text and str(store.path) in caplog.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.log_call(record())  # usable again once the lock is gone
    assert store.execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 1


def test_a_corrupted_store_is_one_line_with_the_fix(genlab_home):
    genlab_home.mkdir(parents=True, exist_ok=True)
    (genlab_home / "genlab.db").write_bytes(b"this is not a database" * 100)
    out = subprocess.run([sys.executable, "-m", "genlab.cli", "usage"], capture_output=True, text=True,
                         env={**os.environ, "GENLAB_HOME": str(genlab_home)}, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "genlab.db" in lines[0] and "mv " in lines[0] and ".broken" in lines[0]


def test_files_are_readable_by_their_owner_only(store, velmora):
    for path in (store.path, velmora.path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_store_prompts_off_keeps_call_rows_without_text(local, store, monkeypatch):
    monkeypatch.setenv("GENLAB_STORE_PROMPTS", "0")
    reply = local.chat("Say hi", max_tokens=3, temperature=0, cache=True)
    store.record_response("chatcmpl-z", "local", [{"role": "user", "content": "secret prompt"}], [reply.text])
    assert store.execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 1
    assert store.execute("SELECT COUNT(*) AS n FROM responses")[0]["n"] == 0
    assert store.execute("SELECT COUNT(*) AS n FROM response_cache")[0]["n"] == 0
    with pytest.raises(Exception, match="GENLAB_STORE_PROMPTS=0"):
        store.add_feedback("chatcmpl-z", rating=1)


def test_a_jsonl_run_resumes_without_its_torn_last_row_and_appends_on_a_line_of_its_own(tmp_path):
    path = tmp_path / "rows.jsonl"
    assert resume_jsonl(path) == [] and not path.exists()
    for i in range(3):
        append_jsonl(path, {"id": i, "text": "café"})
    whole = path.read_text(encoding="utf-8")
    path.write_text(whole[:-9], encoding="utf-8")                  # killed while writing the third row
    assert [row["id"] for _, row in resume_jsonl(path)] == [0, 1]
    append_jsonl(path, {"id": 2, "text": "café"})
    assert path.read_text(encoding="utf-8") == whole
    path.write_text(whole.rstrip("\n"), encoding="utf-8")          # a whole row, cut before its newline
    assert len(resume_jsonl(path)) == 3 and path.read_text(encoding="utf-8") == whole
    append_jsonl(path, {"id": 3})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [0, 1, 2, 3]


def test_a_bad_jsonl_row_before_the_last_is_an_error_naming_its_line_and_nothing_is_cut(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": 0}\n{"id": \n{"id": 2}\n')
    with pytest.raises(ConfigError, match=r"rows.jsonl:2: not valid JSON"):
        resume_jsonl(path)
    assert path.read_text() == '{"id": 0}\n{"id": \n{"id": 2}\n'


def test_a_jsonl_row_nested_too_deeply_to_read_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": 0}\n{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n")   # a RecursionError traceback
    with pytest.raises(ConfigError, match=r"rows.jsonl:2: lists or objects nested too deeply to read; flatten them"):
        list(read_jsonl(path))


def test_a_folder_on_a_file_system_without_locks_is_used_unheld(tmp_path, monkeypatch):
    """Fault injection: some network mounts refuse flock (ENOLCK); the work goes on, as it did
    before folders were held, rather than failing on the lock."""
    import errno
    import fcntl

    from genlab.io import hold_folder

    def refuse_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse_locks)
    hold = hold_folder(tmp_path, "runs genlab eval")
    assert (tmp_path / ".genlab.lock").read_text() == f"{os.getpid()} runs genlab eval"
    hold.close()
