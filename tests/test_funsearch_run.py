"""Program search end to end on the embedded model: a real run, kill -9 and resume, the CLI."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from genlab.errors import ConfigError
from genlab.search.funsearch.config import EvolveConfig
from genlab.search.funsearch import sandbox
from genlab.search.funsearch.runner import Run, evolve
from genlab.search.funsearch.spec import load_spec

# Seeds the model calls (seed_model), so a failure can be replayed. Any seed will do: under the
# grammar nearly every sample is a valid program (bench/results/evolve_small_model.json).
SEED = 0
MAX_TOKENS = 160


def genlab(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], capture_output=True, text=True,
                          timeout=600, **kw)


def rows(run_dir: Path) -> list[dict]:
    db = sqlite3.connect(run_dir / "run.db")
    db.row_factory = sqlite3.Row
    return [dict(r) for r in db.execute("SELECT * FROM samples ORDER BY id")]


def first_fit_score() -> float:
    """The seed (`return 0.0`) packs First Fit: minus the mean bins over the training instances, counted here."""
    def bins(instance: dict) -> int:
        loads: list[int] = []
        for item in instance["items"]:
            for i, load in enumerate(loads):
                if load + item <= instance["capacity"]:
                    loads[i] += item
                    break
            else:
                loads.append(item)
        return len(loads)

    instances = load_spec("bin-packing").inputs().values()
    return -sum(map(bins, instances)) / len(instances)


def test_short_real_constrained_run_registers_valid_programs(tmp_path):
    config = EvolveConfig(spec="bin-packing", samples=8, seed=SEED, seed_model=True, max_tokens=MAX_TOKENS)
    run, progress = evolve(config, tmp_path / "run")
    assert run.constrained  # on by default on the embedded model
    samples = rows(tmp_path / "run")
    assert len(samples) == 9 and samples[0]["model"] == "seed" and samples[0]["score"] == first_fit_score()
    # Under the grammar every sample is a body that parses: none is discarded for its text.
    assert all(s["code"] is not None for s in samples[1:]), [s["raw"] for s in samples if s["code"] is None]
    valid = [s for s in samples[1:] if s["score"] is not None]
    assert progress.valid == len(valid) >= 1
    assert sorted(s["registered_seq"] for s in valid) == list(range(len(valid)))
    assert all(s["status"] in ("evaluated", "discarded") for s in samples)
    assert run.database.registered == len(valid)
    prompts = sqlite3.connect(tmp_path / "run" / "run.db").execute(
        "SELECT completion_tokens, model, constrained FROM prompts").fetchall()
    assert prompts[0][0] > 0 and prompts[0][1] == "local" and all(p[2] == 1 for p in prompts)


def test_free_sampling_on_request(tmp_path):
    config = EvolveConfig(spec="bin-packing", samples=4, seed=SEED, max_tokens=MAX_TOKENS, constrain=False)
    run, progress = evolve(config, tmp_path / "run")
    assert not run.constrained and progress.samples == 4
    prompts = sqlite3.connect(tmp_path / "run" / "run.db").execute("SELECT constrained FROM prompts").fetchall()
    assert prompts == [(0,)]


INDESCRIBABLE = """import funsearch


@funsearch.run
def solve(word: str) -> float:
    return float(len(shout(word)))


@funsearch.evolve
def shout(word: str) -> str:
    \"\"\"Returns the word, louder.\"\"\"
    return word


@funsearch.inputs
def inputs() -> dict:
    return {"a": "hello", "b": "bin"}
"""


def test_a_spec_the_grammar_cannot_describe_is_sampled_freely_with_a_notice(tmp_path):
    spec = tmp_path / "shout.py"
    spec.write_text(INDESCRIBABLE)
    result = genlab("evolve", str(spec), "--samples", "2", "--max-tokens", "48", "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    notice = [line for line in result.stderr.splitlines() if line.startswith("free sampling")]
    assert notice == ["free sampling: the grammar cannot describe shout() (it returns str, and the grammar writes "
                      "numbers and arrays only)"]
    assert "Traceback" not in result.stderr
    shown = genlab("evolve", "show", str(tmp_path / "r"))
    assert "free sampling: 2 samples" in shown.stdout


def test_max_minutes_alone_lets_time_end_the_run(tmp_path, genlab_home):
    """`make run` once passed --samples 100000 so that only its time limit would count."""
    result = genlab("evolve", "bin-packing", "--max-minutes", "0.1", "--max-tokens", str(MAX_TOKENS),
                    "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "stopped: time limit reached" in result.stdout + result.stderr
    info = json.loads(genlab("evolve", "show", str(tmp_path / "r"), "--json").stdout)
    assert info["target"] is None and info["samples"] >= 1
    assert f"samples {info['samples']} · evaluated" in genlab("evolve", "show", str(tmp_path / "r")).stdout
    with pytest.raises(ConfigError, match="a run needs an end: --samples, --max-minutes or --budget-usd"):
        EvolveConfig(spec="bin-packing", samples=None)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """A run killed with SIGKILL mid-way, then resumed to its target."""
    home = tmp_path_factory.mktemp("home")
    run_dir = home / "run"
    env = {**os.environ, "GENLAB_HOME": str(home)}
    args = ["evolve", "bin-packing", "--samples", "12", "--seed", str(SEED), "--max-tokens", str(MAX_TOKENS),
            "--islands", "2", "--run-dir", str(run_dir)]
    log = open(home / "evolve.log", "w")
    workdirs_before = set(Path(tempfile.gettempdir()).glob("genlab-sandbox-*"))
    proc = subprocess.Popen([sys.executable, "-m", "genlab.cli", *args], env=env, start_new_session=True,
                            stdout=log, stderr=log)
    deadline = time.time() + 300
    before: list[dict] = []
    while time.time() < deadline:
        time.sleep(0.5)
        assert proc.poll() is None, f"genlab evolve ended early: {(home / 'evolve.log').read_text()[-2000:]}"
        if (run_dir / "run.db").exists():
            try:
                before = rows(run_dir)
            except sqlite3.Error:
                continue
            if len(before) >= 5:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = rows(run_dir)
    assert 5 <= len(before) < 13, "the run should be killed part-way"
    resumed = genlab("evolve", "--resume", str(run_dir), env=env)
    assert resumed.returncode == 0, resumed.stderr
    # SIGKILL skipped the killed run's `finally`; the resumed run removed its sandbox folders
    assert set(Path(tempfile.gettempdir()).glob("genlab-sandbox-*")) <= workdirs_before
    return run_dir, before, rows(run_dir), env


def test_kill_9_and_resume_loses_and_duplicates_nothing(resumed_run):
    run_dir, before, after, _ = resumed_run
    assert len(after) == 13  # the seed and 12 samples
    assert [r["id"] for r in after] == list(range(1, 14))
    by_id = {r["id"]: r for r in after}
    for row in before:  # everything saved before the kill is still there, unchanged
        assert by_id[row["id"]]["raw"] == row["raw"] and by_id[row["id"]]["code"] == row["code"]
        assert by_id[row["id"]]["prompt_id"] == row["prompt_id"]
    assert all(r["status"] != "pending" for r in after)
    seqs = sorted(r["registered_seq"] for r in after if r["registered_seq"] is not None)
    assert seqs == list(range(len(seqs)))
    assert sum(1 for r in after if r["score"] is not None and r["prompt_id"] is not None) == len(seqs)
    # --islands reached the database, and the resumed run kept it
    meta = sqlite3.connect(run_dir / "run.db").execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    assert json.loads(meta[0])["database"]["num_islands"] == 2
    assert {r["island"] for r in after if r["prompt_id"] is not None} <= {0, 1}


def test_sandbox_folders_of_a_killed_process_are_removed_and_no_others(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sandbox, "_swept", False)
    namespace, live = str(sandbox._pid_namespace()), str(os.getpid())
    ended = subprocess.Popen(["true"])
    ended.wait()
    killed = tmp_path / f"genlab-sandbox-{namespace}-{ended.pid}-abc"
    (killed / "root").mkdir(parents=True)
    kept = [tmp_path / f"genlab-sandbox-{namespace}-{live}-abc",     # this process's own
            tmp_path / f"genlab-sandbox-{namespace}-1-abc",          # a running process
            tmp_path / f"genlab-sandbox-{int(namespace) + 1}-{ended.pid}-abc",  # another PID namespace
            tmp_path / "genlab-sandbox-abc"]                         # not genlab's naming
    for path in kept:
        path.mkdir()
    made = Path(sandbox._new_workdir())
    assert made.name.startswith(f"genlab-sandbox-{namespace}-{live}-") and made.is_dir()
    assert not killed.exists()
    assert all(path.exists() for path in kept)


def test_show_best_report_and_score(resumed_run, tmp_path):
    run_dir, _, after, env = resumed_run
    show = genlab("evolve", "show", str(run_dir), "--json", env=env)
    info = json.loads(show.stdout)
    assert info["samples"] == 12 and info["pending"] == 0 and info["seed_score"] == first_fit_score()
    assert info["sampling"]["constrained"]["samples"] == 12
    best = genlab("evolve", "best", str(run_dir), env=env)
    assert best.stdout.startswith("def priority(") and "score" in best.stderr
    report = genlab("evolve", "report", str(run_dir), "--no-test", env=env)
    assert report.returncode == 0, report.stderr
    text = (run_dir / "report.md").read_text()
    assert "## Best program" in text and "```diff" in text and (run_dir / "report.png").stat().st_size > 5000
    # a best that only ties the seed is not presented as a find
    found = "scores above the seed's" if info["best"] > info["seed_score"] else "no sample scored above it"
    assert found in best.stderr and found in text
    elsewhere = genlab("evolve", "report", str(run_dir), "--no-test", "--out", str(tmp_path / "new" / "r.md"), env=env)
    assert elsewhere.returncode == 0 and (tmp_path / "new" / "r.png").exists()   # its folder is made
    wrong = genlab("evolve", "report", str(run_dir), "--no-test", "--out", str(tmp_path / "r.txt"), env=env)
    assert wrong.returncode == 1 and "--out " + str(tmp_path / "r.txt") + ": give a file name ending in .md" in wrong.stderr
    program = tmp_path / "best_fit.py"
    program.write_text("import numpy as np\n\ndef priority(item, bins):\n    return -(bins - item)\n")
    scored = genlab("evolve", "score", "bin-packing", str(program), "--json", env=env)
    results = json.loads(scored.stdout)
    assert round(results["OR1"]["metric"]["value"], 2) == 5.81 and results["train"]["scored"] == 20


def test_bad_spec_fails_before_any_model_call(tmp_path, genlab_home):
    spec = tmp_path / "broken.py"
    spec.write_text("import funsearch\n\n@funsearch.run\ndef solve(x):\n    return x\n")
    result = genlab("evolve", str(spec), "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "has no function marked @funsearch.evolve" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists() and not (genlab_home / "genlab.db").exists()


@pytest.mark.parametrize("args, message", [
    (["--seed-program", "worst-fit"], "the bin-packing spec has no baseline 'worst-fit' to seed from; choose one of: "
                                      "first-fit, best-fit"),
    (["--constrain", "-m", "openai:gpt-4o-mini"], "--constrain needs a backend that takes grammars"),
    (["--max-minutes", "0"], "--max-minutes must be more than 0"),      # it started a run that stopped at once
    (["--max-tokens", "0"], "--max-tokens must be at least 1"),
    (["--eval-workers", "0"], "--eval-workers must be at least 1"),    # it was taken for "the default"
    (["--islands", "0"], "--islands must be at least 1"),
    (["--seed", "-5"], "--seed must be 0 or more"),                    # a traceback from numpy, after the seed ran
])
def test_bad_run_options_fail_before_anything_is_created(tmp_path, genlab_home, args, message):
    env = {**os.environ, "OPENAI_API_KEY": "sk-unused"}
    result = genlab("evolve", "bin-packing", *args, "--run-dir", str(tmp_path / "r"), env=env)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_a_model_that_cannot_be_reached_stops_the_run_with_exit_1_and_the_way_to_resume(tmp_path, genlab_home):
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/v1#m"          # nothing listens there
    result = genlab("evolve", "bin-packing", "-m", url, "--samples", "8", "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "stopped: model failed 3 times in a row: cannot reach http://127.0.0.1:" in result.stderr
    assert f"continue with: genlab evolve --resume {tmp_path / 'r'}" in result.stderr
    assert [r["status"] for r in rows(tmp_path / "r")] == ["evaluated"]     # the seed, scored; nothing else drawn


@pytest.mark.parametrize("failing, nth", [("save_evaluation", 3), ("add_prompt", 2)])
def test_a_store_that_cannot_be_written_stops_the_run_for_a_resume(tmp_path, monkeypatch, failing, nth):
    """On a full disk an evaluation that could not be saved raised in the evaluator's callback:
    a traceback for each, and the run waited forever for them. Now the run stops as a failed
    run naming the fix, and resumes once it is fixed (fault injection: from the nth on, the
    store's writes of one kind fail as SQLite's do on a full disk)."""
    import sqlite3 as sqlite

    from genlab.io import store_error

    config = EvolveConfig(spec="bin-packing", samples=8, seed=SEED, seed_model=True, max_tokens=MAX_TOKENS)
    run = Run.start(config, tmp_path / "run")
    write, calls = getattr(run.store, failing), []

    def full_disk_from_the_nth(*args, **kwargs):
        calls.append(1)
        if len(calls) >= nth:
            raise store_error(run.store.path, sqlite.OperationalError("database or disk is full"))
        return write(*args, **kwargs)

    monkeypatch.setattr(run.store, failing, full_disk_from_the_nth)
    progress = run.execute()
    assert progress.failed and progress.stopped_because == (f"{run.store.path}: database or disk is full; free some "
                                                            f"space on the disk that holds {tmp_path / 'run'}")
    saved = rows(tmp_path / "run")
    done = sum(r["status"] != "pending" for r in saved)
    if failing == "save_evaluation":     # the seed and two samples; the others wait for the resume
        assert done == 3 and len(saved) in (5, 9)
    else:                                # the first prompt's four samples; the second's never stored
        assert done == len(saved) == 5
    resumed = Run.resume(tmp_path / "run").execute()
    assert not resumed.failed and resumed.samples == 8
    after = rows(tmp_path / "run")
    assert len(after) == 9 and all(r["status"] != "pending" for r in after)
    assert [r["raw"] for r in after[:len(saved)]] == [r["raw"] for r in saved]     # nothing saved was lost


def test_a_sandbox_that_cannot_start_stops_the_run_and_the_resume_evaluates_what_it_could_not(tmp_path, monkeypatch):
    """With no room in /tmp for the sandbox's work folder, every sample was recorded as an
    evaluator error, for good, while the run drew on to 'target reached' (24 of 40 on a full
    tmpfs). Now the first one stops the run; the sample stays pending and --resume scores it."""
    config = EvolveConfig(spec="bin-packing", samples=4, seed=SEED, seed_model=True, max_tokens=MAX_TOKENS)
    assert not Run.start(config, tmp_path / "run").execute().failed
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))       # the real sandbox, with no /tmp
    progress = Run.resume(tmp_path / "run", samples=8).execute()
    assert progress.failed and progress.stopped_because.startswith(
        "the sandbox could not run a program (FileNotFoundError: [Errno 2] No such file or directory:")
    pending = [r for r in rows(tmp_path / "run") if r["status"] == "pending"]
    assert pending and all(r["error_kind"] is None for r in rows(tmp_path / "run"))
    monkeypatch.undo()
    resumed = Run.resume(tmp_path / "run").execute()
    assert not resumed.failed and resumed.samples == 8
    after = {r["id"]: r for r in rows(tmp_path / "run")}
    assert len(after) == 9 and all(after[r["id"]]["status"] == "evaluated" for r in pending)


def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path, genlab_home):
    """A real Ctrl-C: the way to resume, then exit status 130. (By hand, the process died with
    SIGSEGV after that line in two Ctrl-C of three, a sampler thread still inside llama.cpp;
    here the timing rarely shows it, so test_local.py checks that crash deterministically.)"""
    from tests.conftest import interrupted

    run_dir = tmp_path / "run"

    def drawn() -> int:
        try:
            return len(rows(run_dir))
        except sqlite3.Error:
            return 0

    result = interrupted(["evolve", "bin-packing", "--samples", "100", "--run-dir", str(run_dir)], lambda: drawn() > 4)
    assert result.returncode == 130, result.stderr[-2000:]
    assert f"interrupted; continue with: genlab evolve --resume {run_dir}" in result.stderr


def test_resume_of_a_missing_run(tmp_path):
    result = genlab("evolve", "--resume", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "no run at" in result.stderr


def test_resume_refuses_settings_it_cannot_change_rather_than_ignoring_them(tmp_path):
    result = genlab("evolve", "bin-packing", "--resume", str(tmp_path / "run"), "-m", "gemini:gemini-2.5-flash",
                    "--max-tokens", "99", "--samples", "9")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--resume continues a run with the settings it started with, so SPEC, --model, --max-tokens cannot" \
        in result.stderr


def test_budget_stops_drawing(served, genlab_home, monkeypatch, tmp_path):
    # Price the served model through a user price file, so each call costs real (fake) money.
    # Each prompt reserves its worst case, about $1.13 (4 choices x (its ~2,200 bytes as tokens
    # + 64 for the template) at $1e-4, and 4 x 64 tokens at $1e-3), and really costs $0.23 to $0.49
    # (llama.cpp counts its ~590 prompt tokens once per choice). So a $1.50 budget admits one or
    # two prompts and the 60 samples asked for can never be reached, however long the answers.
    genlab_home.mkdir(parents=True, exist_ok=True)
    (genlab_home / "prices.json").write_text(json.dumps({"models": {"local": {
        "input_cost_per_token": 1e-4, "output_cost_per_token": 1e-3}}}))
    monkeypatch.setenv("GENLAB_API_KEY", served.key)
    config = EvolveConfig(spec="bin-packing", model=f"{served.base_url}#local", samples=60, seed=1,
                          max_tokens=64, budget_usd=1.5)
    run, progress = evolve(config, tmp_path / "run")
    assert progress.stopped_because.startswith("budget spent")
    assert "could cost up to" in progress.stopped_because and 0 < progress.cost_usd <= 1.5
    assert 4 <= progress.samples <= 8 and progress.samples % 4 == 0
    prompts = sqlite3.connect(tmp_path / "run" / "run.db").execute("SELECT COUNT(*), SUM(cost_usd) FROM prompts")
    count, cost = prompts.fetchone()
    assert count == progress.samples // 4 and cost == pytest.approx(progress.cost_usd)
    import re
    worst, left = map(float, re.search(r"up to \$([\d.]+) and \$([\d.]+)", progress.stopped_because).groups())
    assert worst > left and left == pytest.approx(1.5 - progress.cost_usd, abs=1e-4)  # stopped only when needed

    # Resumed, the run keeps its budget, and what it spent counts: no prompt fits what is left.
    resumed = Run.resume(tmp_path / "run").execute()
    assert resumed.stopped_because.startswith("budget spent") and resumed.samples == progress.samples
    # A larger total lets it draw on, until that total would be overspent.
    raised = Run.resume(tmp_path / "run", budget_usd=2.5).execute()
    assert raised.stopped_because.startswith("budget spent")
    assert raised.samples > progress.samples and progress.cost_usd < raised.cost_usd <= 2.5
    with pytest.raises(ConfigError, match="a resumed run keeps its model"):
        Run.resume(tmp_path / "run", model="local")


def test_a_run_is_searched_by_one_process_at_a_time(tmp_path, genlab_home):
    """Two resumes of one run drew the same prompts, and one died on a UNIQUE constraint
    ("check the file and the disk") after its model calls."""
    run = Run.start(EvolveConfig(spec="bin-packing", samples=8), tmp_path / "run")   # held until executed
    result = genlab("evolve", "--resume", str(tmp_path / "run"), "--samples", "16")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'run'} is in use: genlab process {os.getpid()} runs genlab "
                                    "evolve there; wait for it to end, or stop it")
    assert genlab("evolve", "show", str(tmp_path / "run")).returncode == 0     # reading it needs no hold
    run.store.release()
    Run.resume(tmp_path / "run").store.release()      # free once the first process lets it go


def test_a_run_refuses_a_sandbox_that_cannot_isolate_unless_accepted(tmp_path, monkeypatch):
    from genlab.search.funsearch import runner
    from genlab.search.funsearch.sandbox import Limits, Sandbox

    # Fault injection: a sandbox without isolation, as on a machine that refuses user namespaces.
    monkeypatch.setattr(runner, "_sandbox", lambda config: Sandbox(Limits(timeout_s=config.timeout_s), isolate=False))
    config = EvolveConfig(spec="bin-packing", samples=1, seed=SEED, max_tokens=MAX_TOKENS)
    with pytest.raises(ConfigError, match="cannot fully isolate.*isolation turned off.*--unsafe-sandbox"):
        runner.Run.start(config, tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before anything was created or run
    accepted = runner.Run.start(config, tmp_path / "r", unsafe_sandbox=True)
    assert accepted.sandbox_missing == ["isolation turned off"]


def test_scoring_commands_refuse_an_unisolated_sandbox_or_say_what_it_lacks_first(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from genlab.cli import app

    # Fault injection: every sandbox runs without isolation, as on a machine that refuses user namespaces.
    isolating = sandbox.Sandbox.__init__
    monkeypatch.setattr(sandbox.Sandbox, "__init__", lambda self, limits=None, isolate=True, python=None:
                        isolating(self, limits, isolate=False, python=python))
    monkeypatch.setattr(sandbox, "_probes", {})
    program = tmp_path / "first_fit.py"
    program.write_text("def priority(item, bins):\n    return 0.0\n")
    for command in (["score", "bin-packing", str(program)], ["tune", "bin-packing", str(program), "--variants", "1"],
                    ["baselines", "bin-packing"]):
        refused = CliRunner().invoke(app, ["evolve", *command])
        assert isinstance(refused.exception, ConfigError) and "--unsafe-sandbox" in str(refused.exception), command
        accepted = CliRunner().invoke(app, ["evolve", *command, "--unsafe-sandbox"])
        assert accepted.exit_code == 0, (command, accepted.output)
        # said before anything ran: the first line of stderr, ahead of every result
        assert accepted.stderr.startswith("unsafe sandbox (--unsafe-sandbox): programs run without isolation turned "
                                          "off"), (command, accepted.stderr)
