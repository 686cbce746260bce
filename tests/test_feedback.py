"""Feedback: captured through `genlab serve`'s /v1/feedback and `genlab chat`, stored with
the full prompt and reply, exported in TRL's formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from genlab.errors import ConfigError
from genlab.io import write_jsonl
from genlab.store import Store
from genlab.train.data import load_rows
from genlab.train.feedback import export_rows
from tests.test_cli import genlab
from tests.test_serve import post_raw

ROOT = Path(__file__).resolve().parent.parent
QUESTION = [{"role": "user", "content": "Name a colour of the sky."}]


@pytest.fixture
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=served.key, max_retries=0)


def test_feedback_through_the_server_ends_up_in_every_export(served, client):
    rated = client.chat.completions.create(model="local", messages=QUESTION, max_tokens=12, temperature=0)
    pair = client.chat.completions.create(model="local", messages=QUESTION, max_tokens=12, n=2, temperature=1.0,
                                          seed=3)
    stream = client.chat.completions.create(model="local", messages=QUESTION, max_tokens=8, stream=True)
    streamed_id = {chunk.id for chunk in stream}
    assert len(streamed_id) == 1
    streamed_id = streamed_id.pop()

    assert post_raw(served, "/feedback", {"response_id": rated.id, "rating": "up"})[0] == 200
    status, body = post_raw(served, "/feedback", {"response_id": streamed_id, "rating": "down",
                                                  "better_response": "Blue."})
    assert status == 200 and json.loads(body)["stored"] is True
    assert post_raw(served, "/feedback", {"chosen_id": pair.id, "chosen_index": 1, "rejected_id": pair.id,
                                          "rejected_index": 0})[0] == 200

    store = served.store()
    sft, _ = export_rows(store, "sft")
    preference, _ = export_rows(store, "preference")
    unpaired, _ = export_rows(store, "unpaired")
    assert {"messages": QUESTION + [{"role": "assistant", "content": rated.choices[0].message.content}]} in sft
    assert {"messages": QUESTION + [{"role": "assistant", "content": "Blue."}]} in sft
    assert {"prompt": QUESTION, "chosen": [{"role": "assistant", "content": pair.choices[1].message.content}],
            "rejected": [{"role": "assistant", "content": pair.choices[0].message.content}]} in preference
    assert any(r["chosen"] == [{"role": "assistant", "content": "Blue."}] for r in preference)
    labels = [(r["completion"][0]["content"], r["label"]) for r in unpaired]
    assert (rated.choices[0].message.content, True) in labels and ("Blue.", True) in labels
    assert any(label is False for _, label in labels)                 # the streamed reply's thumbs down


def test_the_walkthrough_user_rates_served_replies_and_each_becomes_a_demonstration(served):
    """examples/tune/rate_replies.py, step 1 of examples/tune/walkthrough.sh, against a real server."""
    script = ROOT / "examples" / "tune" / "rate_replies.py"
    questions = [json.loads(line) for line in script.with_name("right_wrong_prompts.jsonl").read_text().splitlines()]
    before = len(served.store().feedback_rows())
    result = subprocess.run([sys.executable, str(script), "--base-url", served.base_url, "--api-key", served.key,
                             "--limit", "3"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "rated 3/3 replies" in result.stdout
    rows = served.store().feedback_rows()[before:]
    assert len(rows) == 3
    sft, _ = export_rows(served.store(), "sft")
    for question in questions[:3]:       # a thumbs up is the wanted reply; a thumbs down carries it
        assert {"messages": question["prompt"] + [{"role": "assistant", "content": f"ANSWER: {question['answer']}"}]} in sft


@pytest.mark.parametrize("body, status, message", [
    ({"response_id": "chatcmpl-nope", "rating": "up"}, 404, "no recorded response 'chatcmpl-nope'"),
    ({"response_id": "x", "rating": "meh"}, 400, "invalid 'rating'"),
    ({"response_id": "x"}, 400, "send {response_id, rating: up|down"),
    ({"chosen_id": "x"}, 400, "a preference needs chosen_id and rejected_id"),
    ({"chosen_id": "x", "rejected_id": "x"}, 400, "names reply 'x' (choice 0) as both chosen and rejected"),
    ({"response_id": "x", "rating": "up", "stars": 5}, 400, "invalid 'stars'"),
])
def test_bad_feedback_is_refused_with_a_reason(served, body, status, message):
    got, raw = post_raw(served, "/feedback", body)
    assert got == status
    error = json.loads(raw)["error"]
    assert message in error["message"]
    if status == 404:
        assert (error["code"], error["param"]) == ("response_not_found", "response_id")


def test_latest_rating_wins_and_exports_round_trip(store, tmp_path):
    store.record_response("r1", "local", QUESTION, ["Green."])
    store.record_response("r2", "local", [{"role": "user", "content": "Other?"}], ["No."])
    store.add_feedback("r1", rating=1)
    store.add_feedback("r1", rating=-1)                           # changed their mind
    store.add_feedback("r1", rejected_id="r2")                    # different prompts: not a usable pair
    unpaired, skipped = export_rows(store, "unpaired")
    assert unpaired == [{"prompt": QUESTION, "completion": [{"role": "assistant", "content": "Green."}], "label": False}]
    assert skipped == 1
    preference, skipped = export_rows(store, "preference")
    assert preference == [] and skipped == 2
    write_jsonl(unpaired, tmp_path / "u.jsonl")
    assert [json.loads(line) for line in (tmp_path / "u.jsonl").read_text().splitlines()] == unpaired
    with pytest.raises(ConfigError, match="no recorded response 'r9'"):
        store.add_feedback("r9", rating=1)


def test_the_same_answer_twice_is_no_preference_pair(store, tmp_path):
    """Two seeded replies to one prompt are often the same text, and a user may send the reply
    back as the better answer: neither is a pair tune dpo could learn from, so both are skipped
    and the export loads as training data (which refuses chosen == rejected)."""
    store.record_response("r1", "local", QUESTION, ["Blue."])
    store.record_response("r2", "local", QUESTION, ["Blue."])
    store.record_response("r3", "local", QUESTION, ["Green."])
    store.add_feedback("r1", rejected_id="r2")                   # the same answer twice
    with pytest.raises(ConfigError, match="names reply 'r1' \\(choice 0\\) as both chosen and rejected"):
        store.add_feedback("r1", rejected_id="r1")               # one reply against itself
    store.add_feedback("r1", rejected_id="r3")                   # a real pair
    store.add_feedback("r3", rating=-1, better="Green.")         # "better" is the reply itself
    preference, skipped = export_rows(store, "preference")
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in preference] == [("Blue.", "Green.")]
    assert skipped == 2
    write_jsonl(preference * 2, tmp_path / "p.jsonl")
    assert len(load_rows(tmp_path / "p.jsonl", "preference")) == 2
    write_jsonl([preference[0], {**preference[0], "rejected": preference[0]["chosen"]}], tmp_path / "same.jsonl")
    with pytest.raises(ConfigError, match=r"same.jsonl:2: \"chosen\" and \"rejected\" are the same"):
        load_rows(tmp_path / "same.jsonl", "preference")


def test_chat_thumbs_and_better_answer_are_stored(genlab_home, tmp_path):
    result = genlab("chat", "--temperature", "0", "--max-tokens", "10",
                    stdin="/up\nSay hi.\n/up great\n/up\n/dwon\n/help\nSay bye.\n/up\n/down Goodbye!\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("replaces your earlier rating of this reply") == 1   # /down after /up on "Say bye."
    assert "nothing to rate yet" in result.stderr
    assert "nothing stored: /up takes no text" in result.stderr
    assert "no command /dwon; /up or /down [better answer] rates the last reply" in result.stderr
    calls = Store(genlab_home / "genlab.db").execute("SELECT COUNT(*) AS n FROM calls")[0]["n"]
    assert calls == 2  # neither the typo nor /help reached the model
    exported = genlab("feedback", "export", str(tmp_path / "sft.jsonl"), "--format", "sft")
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert [r["messages"][-2]["content"] for r in rows] == ["Say hi.", "Say bye."]
    assert rows[1]["messages"][-1] == {"role": "assistant", "content": "Goodbye!"}
    assert rows[1]["messages"][0] == {"role": "user", "content": "Say hi."}     # the whole conversation
    stats = genlab("feedback", "stats")
    assert "2 feedback rows: 1 thumbs up, 1 thumbs down (1 with a better answer), 0 pairwise" in stats.stdout
    assert "not counted: 1 earlier rating of a reply rated again" in stats.stderr


def test_export_with_too_few_rows_says_how_to_get_more(genlab_home, tmp_path):
    result = genlab("feedback", "export", str(tmp_path / "p.jsonl"), "--format", "preference")
    assert result.returncode == 1
    assert "only 0 preference rows in the captured feedback (need 1); rate more replies" in result.stderr
    assert not (tmp_path / "p.jsonl").exists()
