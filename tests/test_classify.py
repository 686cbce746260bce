"""Enum-mode classification on the embedded model, and `genlab classify`."""

import json
import subprocess
import sys

import pytest

from genlab.search.classify import Classifier, Example
from genlab.search.tasks import load_task


@pytest.fixture(scope="module")
def topics():
    return load_task("topics")


def test_enum_mode_is_always_a_valid_label_on_50_inputs(topics, local):
    """What genlab controls is validity; accuracy is the small model's, and bench/classify_enum.py
    measures it (and validity) on 200 inputs against free text + parsing."""
    items = topics.items[:50]
    classifier = Classifier(local, topics.labels)
    results = list(classifier.classify_many([i["text"] for i in items], concurrency=2))
    assert len(results) == 50 and all(r.label in topics.labels for r in results)


def test_free_text_mode_may_miss_but_is_parsed(topics, local):
    classifier = Classifier(local, topics.labels, method="free")
    results = [classifier.classify(i["text"]) for i in topics.items[:10]]
    assert all(r.label is None or r.label in topics.labels for r in results)
    assert all(r.raw for r in results)


def test_reasoning_comes_before_the_label_and_few_shot_examples_are_used(topics, local, store):
    classifier = Classifier(local, topics.labels, reasoning=True, examples=[Example("Goal in the last minute!", "sports")])
    result = classifier.classify("Rain and wind all day tomorrow.")
    assert result.reasoning and result.label in topics.labels
    calls = store.execute("SELECT prompt_tokens FROM calls ORDER BY id")
    assert len(calls) == 2 and calls[1]["prompt_tokens"] > calls[0]["prompt_tokens"]  # the reasoning is in the 2nd


def genlab(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=300)


def test_cli_keeps_order_and_carries_fields_and_a_rerun_is_answered_from_the_cache(tmp_path, genlab_home):
    rows = [{"text": f"Sentence number {i} about the weather and rain.", "gold": "weather", "n": i} for i in range(6)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = genlab("classify", "-l", "sports,weather,food,technology", str(path))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["n"] for o in out] == list(range(6)) and all(o["gold"] == "weather" for o in out)
    assert all(o["label"] in ("sports", "weather", "food", "technology") and o["usage"]["prompt_tokens"] for o in out)
    assert not any(o["usage"]["cache_hit"] for o in out)
    # Run again (after an interruption, say): every text is answered from the store, free.
    again = [json.loads(line) for line in genlab("classify", "-l", "sports,weather,food,technology",
                                                 str(path)).stdout.splitlines()]
    assert [o["label"] for o in again] == [o["label"] for o in out]
    assert all(o["usage"]["cache_hit"] and o["usage"]["cost_usd"] == 0 for o in again)
    fresh = genlab("classify", "-l", "sports,weather,food,technology", "--no-cache", str(path))
    assert not any(json.loads(line)["usage"]["cache_hit"] for line in fresh.stdout.splitlines())


def test_cli_plain_lines_cot_and_other_field():
    result = genlab("classify", "-l", "yes,no", "--cot", stdin="Is fire hot?\nIs ice hot?\n")
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 2 and all(o["label"] in ("yes", "no") and o["reasoning"] for o in out)
    result = genlab("classify", "-l", "yes,no", "--field", "q", stdin='{"q": "Is fire hot?"}\n')
    assert json.loads(result.stdout)["label"] in ("yes", "no")


@pytest.mark.parametrize("args, stdin, message", [
    (("classify", "-l", "a,a"), "x\n", "labels must be distinct"),
    (("classify", "-l", "yes,no"), '{"body": "x"}\n', "stdin:1: no text field 'text'; choose the field with --field"),
    (("classify", "-l", "yes,no"), 'x\n{"text": 5}\n', "stdin:2: the field 'text' holds int, not text"),
    (("classify", "-l", "yes,no"), "{not json\n", "stdin:1: not valid JSON"),
    (("classify", "-l", "yes,no", "--examples", "/nope.jsonl"), "x\n", "/nope.jsonl: cannot read the few-shot examples file"),
    (("ttc", "bench", "arithmetic", "--ks", "0,3"), None, "every k in --ks must be at least 1"),
    (("ttc", "bench", "nope"), None, "no task 'nope'"),
    (("ttc", "bench", "arithmetic", "--plot", "curves.txt"), None,        # it failed after the whole run
     "--plot curves.txt: give a file name ending in .png, .svg or .pdf"),
])
def test_bad_input_is_one_line(args, stdin, message):
    result = genlab(*args, stdin=stdin)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_files_saved_with_a_byte_order_mark_read_as_text(tmp_path):
    # Some editors start UTF-8 files with a BOM; it is not part of the first row.
    bom = "\ufeff"
    (tmp_path / "examples.jsonl").write_text(bom + '{"text": "Goal!", "label": "sports"}\n', encoding="utf-8")
    (tmp_path / "labels.txt").write_text(bom + "sports\nweather\n", encoding="utf-8")
    (tmp_path / "texts.txt").write_text(bom + "It snowed.\n", encoding="utf-8")
    result = genlab("classify", str(tmp_path / "texts.txt"), "-l", str(tmp_path / "labels.txt"),
                    "--examples", str(tmp_path / "examples.jsonl"))
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["text"] == "It snowed." and row["label"] in ("sports", "weather")


def test_a_few_shot_file_names_the_line_that_lacks_a_label(tmp_path):
    examples = tmp_path / "examples.jsonl"
    examples.write_text('{"text": "Goal in the last minute!", "label": "sports"}\n\n{"text": "Rain all day"}\n')
    result = genlab("classify", "-l", "sports,weather", "--examples", str(examples), stdin="It snowed.\n")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f'{examples}:3: a few-shot example needs {{"text": ..., "label": ...}}' in result.stderr
