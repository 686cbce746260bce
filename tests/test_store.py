"""The SQLite store: migrations, call records, usage totals, response cache."""

import sqlite3

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
