"""`genlab eval run` as a CI gate, against real HTTP servers: `genlab serve` over the embedded
model, and in front of it a proxy that makes some judge calls come back unreadable, as a
server that ignores the requested JSON format does."""

import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import forward


class FormatDroppingProxy:
    """Forwards to ``upstream``; a structured-output request whose text holds ``marker`` loses its
    ``response_format`` on the way, so the real model answers it in free text (fault injection)."""

    def __init__(self, upstream: str, marker: str):
        self.upstream, self.marker, self.dropped = upstream, marker, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if "response_format" in body and proxy.marker in json.dumps(body["messages"]):
                    del body["response_format"]
                    proxy.dropped += 1
                forward(self, proxy.upstream, json.dumps(body).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def genlab(home: Path, served, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENLAB_HOME": str(home), "GENLAB_API_KEY": served.key}
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture
def proxy(served):
    proxy = FormatDroppingProxy(served.base_url.removesuffix("/v1"), "BROKEN")
    yield proxy
    proxy.close()


def test_unreadable_verdicts_are_errored_assertions_and_the_run_goes_on(tmp_path, served, proxy):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""prompts: ["Name one thing about {{{{topic}}}} in five words."]
models: [{{model: "{served.base_url}#local", label: served}}]
judge: "{proxy.url}#local"
options: {{temperature: 0, max_tokens: 12}}
defaults:
  assert:
    - {{type: not-contains, value: zzzz}}
    - {{type: rubric, metric: fluency, inputs: {{prompt: "Write about {{{{topic}}}}"}}}}
tests:
  - vars: {{topic: the sea}}
  - vars: {{topic: BROKEN bread}}
  - vars: {{topic: trains}}
  - vars: {{topic: BROKEN glass}}
""")
    out = tmp_path / "out"
    result = genlab(tmp_path, served, "eval", "run", str(suite), "--out", str(out))
    assert result.returncode == 100, result.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["output"] for r in rows)               # every row saved
    assert [r["status"] == "error" for r in rows] == [False, True, False, True]
    assert proxy.dropped == 4                                              # each broken verdict tried twice
    for row in rows:
        rubric = row["assertions"][1]
        if row["status"] == "error":
            assert "after 2 calls" in rubric["error"] and rubric["raw"] and not rubric["passed"]
            assert rubric["raw"].lstrip()[:1] != "{"                       # free text, kept as the judge said it
            assert row["assertions"][0]["passed"]                           # the other assertion still ran
        else:
            assert rubric["raw_score"] in (1, 2, 3, 4, 5) and "error" not in rubric
        assert row["judge_tokens"] > 0 and row["judge_cost_usd"] is None   # an unpriced judge
    model = json.loads((out / "summary.json").read_text())["models"][f"{served.base_url}#local"]
    assert model["errors"] == 2 and model["passed"] + model["failed"] == 2 and model["label"] == "served"
    assert model["cost_usd"] is None and model["judge_cost_usd"] is None
    assert "unknown" in result.stdout and "served" in result.stdout and "#local" not in result.stdout
    assert "gate failed: served: pass rate" in result.stderr and "2 errored of 4" in result.stderr
    cases = ET.parse(out / "results.xml").getroot().find("testsuite")
    assert cases.get("name") == "served" and cases.get("tests") == "4" and cases.get("errors") == "2"
    assert [case.find("error") is not None for case in cases.iter("testcase")] == [False, True, False, True]
    page = (out / "report.html").read_text()
    assert "errored (2)" in page and page.count("class='row has-error'") == 2 and "judge said:" in page


def test_exit_codes_fail_under_gate_and_regressions(tmp_path, served):
    def suite(name: str, second: str, extra: str = "") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"""prompts: ["Say hello to {{{{who}}}}."]
models: ["{served.base_url}#local"]
options: {{temperature: 0, max_tokens: 8}}
tests:
  - vars: {{who: Ann}}
    assert: [{{type: not-contains, value: zzzz}}]
  - vars: {{who: Bo}}
    assert: [{{type: {second}, value: zzzz}}]
{extra}""")
        return path

    good, bad = tmp_path / "good", tmp_path / "bad"
    result = genlab(tmp_path, served, "eval", "run", str(suite("v1", "not-contains")), "--out", str(good))
    assert result.returncode == 0 and "gate held" in result.stdout, result.stderr
    regressed = suite("v2", "contains")
    result = genlab(tmp_path, served, "eval", "run", str(regressed), "--out", str(bad), "--compare-to", str(good))
    assert result.returncode == 100
    assert "2 rows compared, 1 regressed, 0 fixed" in result.stdout and "regressed: test 1 (local) pass → fail" \
        in result.stdout
    assert "1 row(s) passed in the earlier run and do not now" in result.stderr
    gate = json.loads((bad / "summary.json").read_text())["gate"]
    assert not gate["held"] and [r["test"] for r in gate["regressions"]] == [1]
    # Half the rows pass: enough for --fail-under 0.5, not for the default (every row).
    assert genlab(tmp_path, served, "eval", "run", str(regressed), "--out", str(bad), "--fail-under", "0.5"
                  ).returncode == 0
    result = genlab(tmp_path, served, "eval", "run", str(suite("v3", "contains", "gate: {pass_rate: 0.5, contains: 0.5}\n")),
                    "--out", str(tmp_path / "v3"))
    assert result.returncode == 100 and "mean contains 0.000 < 0.5" in result.stderr
    assert "pass rate" not in result.stderr                                # 50 % met the gate's pass rate
    # A wrong --compare-to fails before any model call, with exit 1 and the fix.
    result = genlab(tmp_path, served, "eval", "run", str(regressed), "--out", str(tmp_path / "never"),
                    "--compare-to", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "holds no results.jsonl" in result.stderr
    assert not (tmp_path / "never").exists()


def test_a_fail_under_outside_0_to_1_is_refused_before_any_call(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text('prompts: ["Hi"]\ntests: [{vars: {}}]\n')
    result = subprocess.run([sys.executable, "-m", "genlab.cli", "eval", "run", str(suite), "--out", str(tmp_path / "out"),
                             "--fail-under", "90"], capture_output=True, text=True, env={**os.environ,
                                                                                       "GENLAB_HOME": str(tmp_path)})
    assert result.returncode == 2 and "Invalid value for '--fail-under'" in result.stderr
    assert "less than or equal to 1" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("raw, normalized, held", [(2.0, 0.0, False), (0.0, 1.0, True), (-0.5, 0.75, True)])
def test_a_gate_on_verbosity_reads_how_close_the_answers_came_to_its_best(tmp_path, raw, normalized, held):
    """Verbosity's best score, 0, is the middle of -2..2. Its gate read the mean on that scale, so
    answers all far too long (2) held a gate of 0.75, and answers all just right (0) missed it."""
    from genlab.evaluate.gate import check
    from genlab.evaluate.suite import load_suite

    path = tmp_path / "suite.yaml"
    path.write_text('prompts: ["Say {{word}}"]\nmodels: [local]\ntests:\n  - vars: {word: hi}\n'
                    "    assert: [{type: rubric, metric: verbosity}]\ngate: {pass_rate: 0, verbosity: 0.75}\n")
    summary = {"models": {"local": {"label": "local", "pass_rate": 1.0, "failed": 0, "errors": 0, "rows": 4,
                                    "mean_scores": {"rubric:verbosity": normalized},
                                    "mean_raw_scores": {"rubric:verbosity": raw}}}}
    result = check(load_suite(path), summary, {})
    assert result.held == held
    assert result.failures == ([] if held else ["local: mean verbosity closeness to its best score 0.000 < 0.75"])
