"""`genlab eval` end to end on the embedded model: the example suite, cache, resume,
pairwise with swapped orders, judge meta-evaluation, the HTML report."""

import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from genlab.models.local import embedded_gguf

EXAMPLE = Path(__file__).parent.parent / "examples" / "eval" / "summaries.yaml"


def genlab(home: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENLAB_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    out = home / "out"
    result = genlab(home, "eval", "run", str(EXAMPLE), "--out", str(out))
    held = json.loads((out / "summary.json").read_text())["gate"]["held"]
    assert result.returncode == (0 if held else 100), result.stderr   # 100: a row failed, so CI would stop
    return home, out


def test_example_suite_runs_with_parseable_verdicts(example_run):
    _, out = example_run
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and all(r["output"] for r in rows)
    rubric = [a for r in rows for a in r["assertions"] if a["type"] == "rubric:summarization_quality"]
    assert len(rubric) == 24 and all(a["raw_score"] in (1, 2, 3, 4, 5) for a in rubric)  # 100 % parseable
    assert {a["type"] for a in rows[0]["assertions"]} == {"rouge-l", "bleu", "not-contains", "latency",
                                                         "rubric:summarization_quality"}
    header = next(csv.reader(open(out / "results.csv")))
    assert header[:3] == ["test", "prompt", "model"] and "rouge-l" in header
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<tr") >= 26 and rows[0]["output"][:30] in page
    assert "<td>3</td>" in page and "<td>3.0</td>" not in page            # row ids are the tests' numbers
    assert "<th>latency</th>" not in page and page.count("<th>latency (s)</th>") == 1
    summary = json.loads((out / "summary.json").read_text())
    local = summary["models"]["local"]
    assert local["rows"] == 24 and local["passed"] + local["failed"] + local["errors"] == 24
    assert local["judge_tokens"] > 24 * 100 and local["judge_cost_usd"] == 0.0     # the judge, in view
    assert (out / "results.xml").read_text().count("<testcase") == 24


def test_the_example_suite_repeats_its_verdicts_without_the_cache(example_run):
    """Seeded calls decode alone on the embedded model, so a second uncached run of the example
    suite's first 8 rows (concurrency 4, two batches) gives the same outputs and verdicts as the
    first run gave them. (8 rows, not all 24: the whole suite again costs 95 s.)"""
    home, out = example_run
    rows = (EXAMPLE.parent / "notes.jsonl").read_text().splitlines(keepends=True)[:8]
    (home / "first-8.jsonl").write_text("".join(rows))
    suite = EXAMPLE.read_text().replace("tests: notes.jsonl", "tests: first-8.jsonl")
    assert "first-8.jsonl" in suite
    (home / "first-8.yaml").write_text(suite)
    again = home / "uncached"
    result = genlab(home, "eval", "run", str(home / "first-8.yaml"), "--out", str(again), "--no-cache",
                    "--concurrency", "4")
    assert result.returncode in (0, 100), result.stderr
    first, second = ([json.loads(line) for line in (d / "results.jsonl").read_text().splitlines()]
                     for d in (out, again))
    first = first[:8]
    assert len(second) == 8 and [r["test"] for r in second] == [r["test"] for r in first]
    assert json.loads((again / "summary.json").read_text())["models"]["local"]["cache_hits"] == 0

    def verdicts(row: dict) -> list:
        return [(a["type"], a["passed"], round(a["score"], 6), a.get("raw_score")) for a in row["assertions"]
                if a["type"] != "latency"]

    assert [r["output"] for r in second] == [r["output"] for r in first]
    assert [verdicts(r) for r in second] == [verdicts(r) for r in first]


def test_unchanged_suite_costs_nothing_the_second_time(example_run):
    home, _ = example_run
    again = home / "again"
    result = genlab(home, "eval", "run", str(EXAMPLE), "--out", str(again))
    assert result.returncode in (0, 100), result.stderr
    summary = json.loads((again / "summary.json").read_text())
    assert summary["models"]["local"]["cache_hits"] == 24


def test_interrupted_run_resumes_without_repeating_rows(example_run):
    home, out = example_run
    db = sqlite3.connect(out / "eval.db")
    before = dict(db.execute("SELECT key, finished FROM rows"))
    lost = ["3:0:local", "10:0:local", "20:0:local"]
    db.executemany("DELETE FROM rows WHERE key=?", [(k,) for k in lost])
    db.commit()
    result = genlab(home, "eval", "run", str(EXAMPLE), "--out", str(out))
    assert result.returncode in (0, 100), result.stderr
    after = dict(db.execute("SELECT key, finished FROM rows"))
    assert len(after) == 24
    for key, finished in before.items():
        assert (after[key] != finished) == (key in lost), key


def test_a_suite_fixed_after_a_failed_start_reuses_its_folder_and_a_changed_one_does_not(tmp_path):
    from genlab.evaluate.runner import ResultStore

    suite = tmp_path / "suite.yaml"
    body = 'prompts: ["Say {{word}}"]\noptions: {max_tokens: 4, temperature: 0}\ntests:\n  - vars: {word: hi}\n'
    suite.write_text(body + "    assert: [{type: python, value: 'checks.py:ok'}]\n")
    failed = genlab(tmp_path, "eval", "run", str(suite), "--out", str(tmp_path / "out"))
    assert failed.returncode == 1 and "test 0, assertion 0: python assertion 'checks.py:ok': give FILE.py:FUNCTION " \
        "with an existing file" in failed.stderr
    assert not (tmp_path / "out").exists()        # refused as the suite loads, before any model call
    ResultStore(tmp_path / "out", "another version").release()    # a run stopped before its first result
    suite.write_text(body + "    assert: [{type: contains, value: 'h'}]\n")   # fixed: nothing was kept to lose
    fixed = genlab(tmp_path, "eval", "run", str(suite), "--out", str(tmp_path / "out"))
    assert fixed.returncode in (0, 100), fixed.stderr
    suite.write_text(body + "    assert: [{type: contains, value: 'x'}]\n")   # its results would be mixed
    changed = genlab(tmp_path, "eval", "run", str(suite), "--out", str(tmp_path / "out"))
    assert changed.returncode == 1 and "holds results of a different version of this suite" in changed.stderr


def test_a_python_check_that_raises_or_returns_no_score_errors_its_row_and_the_run_goes_on(tmp_path):
    """A check that raised ended the run with a traceback; one that returned NaN, one in the
    summary's statistics. Now each is its row's error, named on stderr, and the rest run."""
    (tmp_path / "checks.py").write_text("def boom(output, vars):\n    return 1 / 0\n"
                                        "def nan(output, vars):\n    return float('nan')\n"
                                        "def ok(output, vars):\n    return True\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text('prompts: ["Say {{word}}"]\noptions: {max_tokens: 4, temperature: 0}\ntests:\n' + "".join(
        f"  - vars: {{word: w{i}}}\n    assert: [{{type: python, value: 'checks.py:{check}'}}]\n"
        for i, check in enumerate(["boom", "nan", "ok"])))
    result = genlab(tmp_path, "eval", "run", str(suite), "--out", str(tmp_path / "out"))
    assert result.returncode == 100 and "Traceback" not in result.stderr
    assert ("2 row(s) errored, e.g. test 0 (local): checks.py:boom raised ZeroDivisionError: division by zero "
            f"(line 2) (every reason: {tmp_path / 'out'}/report.html)") in " ".join(result.stderr.split())
    rows = sorted((json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()),
                  key=lambda r: r["test"])
    assert [r["status"] for r in rows] == ["error", "error", "pass"]
    assert rows[1]["assertions"][0]["error"].startswith("checks.py:nan returned nan; return a bool, a number from 0 to 1")


def test_view_serves_the_reports_read_only(example_run):
    """`genlab eval view` over real HTTP: the listed report page, only report files, only to this
    machine's names, POST refused, a taken port refused."""
    from conftest import announced_port

    home, out = example_run
    proc = subprocess.Popen([sys.executable, "-m", "genlab.cli", "eval", "view", str(out.parent), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "GENLAB_HOME": str(home)})
    try:
        port = announced_port(proc, rb"serving .* at http://127\.0\.0\.1:(\d+)/ ")
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/{out.name}/report.html", timeout=10).read().decode()
        assert page.startswith("<!doctype html>")
        index = urllib.request.urlopen(f"http://localhost:{port}/", timeout=10).read().decode()
        assert re.search(f'<a href="{out.name}/report.html">{out.name}</a></td><td><span title=\'[^\']*/summaries.yaml\'>'
                         'summaries.yaml</span></td><td>24</td>', index)
        assert re.search(r"<td>local: \d+\.\d %</td><td><span class='(pass|fail)'>(held|missed)</span>", index)
        # Only the files a run writes: not the rest of the folder, not a way out of it.
        (out.parent / "secrets.env").write_text("KEY=1")
        for path in ("/secrets.env", f"/{out.name}/../secrets.env", "/../../etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as hidden:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
            assert hidden.value.code == 404, path
        # A page elsewhere that points its own domain at 127.0.0.1 (DNS rebinding) reads nothing.
        rebound = urllib.request.Request(f"http://127.0.0.1:{port}/{out.name}/report.html",
                                         headers={"Host": f"attacker.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as refused_host:
            urllib.request.urlopen(rebound, timeout=10)
        assert refused_host.value.code == 403
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/x", data=b"{}"), timeout=10)
        assert refused.value.code == 405
        taken = genlab(home, "eval", "view", str(out.parent), "--port", str(port))
        assert taken.returncode == 1 and "choose another --port" in taken.stderr and "Traceback" not in taken.stderr
    finally:
        proc.terminate()
        proc.wait(10)


def test_pairwise_runs_both_orders(tmp_path):
    suite = tmp_path / "pair.yaml"
    suite.write_text(f"""prompts: ["Describe {{{{thing}}}} in one sentence."]
models: [local, "local:{embedded_gguf()}"]
options: {{temperature: 0.8, seed: 3, max_tokens: 40}}
tests:
  - vars: {{thing: the sea}}
  - vars: {{thing: a forest}}
  - vars: {{thing: a city at night}}
compare: {{baseline: local, metric: text_quality}}
""")
    result = genlab(tmp_path, "eval", "run", str(suite), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    pairs = [json.loads(d) for (d,) in sqlite3.connect(tmp_path / "out" / "eval.db").execute("SELECT data FROM pairs")]
    assert len(pairs) == 3
    for pair in pairs:
        assert pair["order1"] in ("A", "B", "SAME") and pair["order2"] in ("A", "B", "SAME")
        expected = {"A": "candidate", "B": "baseline", "SAME": "tie"}[pair["order1"]]
        assert pair["consistent"] == (expected == {"A": "baseline", "B": "candidate", "SAME": "tie"}[pair["order2"]])
    judge_calls = sqlite3.connect(tmp_path / "genlab.db").execute(
        "SELECT COUNT(*) FROM calls WHERE source='eval-judge'").fetchone()[0]
    assert judge_calls == 6  # both orders for each of the 3 pairs
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["pairwise"]
    name = f"local:{embedded_gguf()}"
    assert summary[name]["n"] == 3 and 0 <= summary[name]["position_consistency"] <= 1
    assert "win rate" in result.stdout and "position consistency" in result.stdout
    # A judge that goes by position is named as such.
    assert ("changed with the order" in result.stdout) == (summary[name]["position_consistency"] < 0.5)


def test_a_judge_whose_orders_disagree_in_most_rows_is_said_to_go_by_position():
    from genlab.cli.evaluate import position_note

    assert "changed with the order of the responses in 7 of 10 rows" in position_note({"n": 10, "consistent": 3})
    assert position_note({"n": 10, "consistent": 5}) == "" and position_note({"n": 0, "consistent": 0}) == ""


def test_judge_meta_evaluation(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"input": "What is 2 + 2?", "output_1": "4", "output_2": "5", "label": 1, "subset": "math"},
            {"input": "Capital of France?", "output_1": "Berlin", "output_2": "Paris", "label": 2, "subset": "facts"},
            {"input": "Say hello politely.", "output_1": "Hello, nice to meet you.", "output_2": "What.", "label": 1,
             "subset": "style"}]
    pairs.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = genlab(tmp_path, "eval", "judge", str(pairs), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == 3 and 0 <= report["accuracy"] <= 1 and set(report["subsets"]) == {"math", "facts", "style"}
    assert sum(report["confusion"].values()) == 3
    points = tmp_path / "points.jsonl"
    points.write_text("\n".join(json.dumps({"input": "Describe rain.", "output": o, "score": s}) for o, s in
                                [("Rain is water falling from clouds.", 5), ("rain rain", 1), ("Wet.", 2),
                                 ("Drops of water fall from clouds when they get heavy.", 5)]) + "\n")
    result = genlab(tmp_path, "eval", "judge", str(points), "--metric", "fluency", "--json")
    report = json.loads(result.stdout)
    assert report["rows"] == 4 and report["metric"] == "fluency" and sum(report["judge_scores"].values()) == 4


@pytest.mark.parametrize("content, message", [
    ('{"input": "x", "output_1": "a", "output_2": "b", "label": 3}', "d.jsonl:1: label must be 1 or 2"),
    ('{"input": "x", "output_1": "a"}', "missing 'output_2'"),
    ('{"input": "x", "output": "a", "score": 4}\n{"input": "x", "output": "b", "score": "high"}',
     "d.jsonl:2: score must be a number (the human's rating), got 'high'"),   # a traceback before
    ("{oops", "not valid JSON"),
])
def test_bad_judge_datasets(tmp_path, content, message):
    path = tmp_path / "d.jsonl"
    path.write_text(content + "\n")
    result = genlab(tmp_path, "eval", "judge", str(path))
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_judge_labels_written_as_text_are_the_same_labels(tmp_path):
    from genlab.evaluate.judge import read_dataset

    path = tmp_path / "d.jsonl"
    path.write_text('{"input": "x", "output_1": "a", "output_2": "b", "label": "1"}\n'
                    '{"input": "y", "output_1": "a", "output_2": "b", "label": 2}\n')
    kind, rows = read_dataset(path)
    assert kind == "pairwise" and [r["label"] for r in rows] == [1, 2]


def test_one_run_writes_an_out_folder_at_a_time(tmp_path):
    """Two `genlab eval run` on one --out (a CI matrix sharing a workspace) both called every
    model and wrote the same store and reports; the second is refused, naming the first."""
    from genlab.io import hold_folder

    out = tmp_path / "out"
    out.mkdir()
    hold = hold_folder(out, "runs genlab eval")        # as a run in this process does
    result = genlab(tmp_path, "eval", "run", str(EXAMPLE), "--out", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {out} is in use: genlab process {os.getpid()} runs genlab eval there; "
                                    "wait for it to end, or stop it"), result.stderr
    assert not (out / "eval.db").exists() or not sqlite3.connect(out / "eval.db").execute(
        "SELECT COUNT(*) FROM rows").fetchone()[0]
    hold.close()


def test_ctrl_c_says_what_is_kept_and_that_the_same_command_runs_the_rest(tmp_path):
    from tests.conftest import interrupted

    out = tmp_path / "out"

    def rows_done() -> int:
        try:
            return sqlite3.connect(out / "eval.db").execute("SELECT COUNT(*) FROM rows").fetchone()[0]
        except sqlite3.Error:
            return 0

    result = interrupted(["eval", "run", str(EXAMPLE), "--out", str(out)], lambda: rows_done() >= 1,
                         env={"GENLAB_HOME": str(tmp_path / "home")})
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"interrupted; the {rows_done()} rows done are kept in {out}, "
                                                      "and the same command runs the rest")
