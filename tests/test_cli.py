"""The `genlab` command, run as a user runs it (a subprocess), reading the real store."""

import json
import re
import os
import subprocess
import time
import sys
from pathlib import Path

import pytest

from genlab.store import Store


def genlab(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("GENLAB_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], input=stdin, capture_output=True,
                          text=True, env=full_env, timeout=300)


def test_prompt_prints_answer_and_usage_and_logs(genlab_home):
    result = genlab("prompt", "--temperature", "0", "--max-tokens", "20", "Say hello.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "local · " in result.stderr and "completion" in result.stderr
    rows = Store(genlab_home / "genlab.db").execute("SELECT * FROM calls")
    assert len(rows) == 1 and rows[0]["source"] == "cli" and rows[0]["completion_tokens"] > 0


def test_prompt_from_stdin_with_enum_and_json_output(genlab_home):
    result = genlab("prompt", "--enum", "yes,no", "--json", stdin="Is the sky green?")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["choices"][0]["text"] in ("yes", "no") and data["usage"]["prompt_tokens"] > 0


def test_prompt_with_schema_file(tmp_path):
    schema = tmp_path / "colour.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"colour": {"type": "string", "maxLength": 20}},
                                  "required": ["colour"]}))
    result = genlab("prompt", "--json-schema", str(schema), "Name a colour.")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout)["colour"], str)
    inline = genlab("prompt", "--json-schema", schema.read_text(), "Name a colour.")   # the schema itself
    assert inline.returncode == 0, inline.stderr
    assert isinstance(json.loads(inline.stdout)["colour"], str)


def test_frequency_penalty_flag_reaches_the_model(genlab_home):
    args = ("prompt", "--temperature", "0", "--max-tokens", "12", "Repeat after me: 1, 1, 1, 1, 1, 1, 1, 1, 1")
    plain, penalised = genlab(*args), genlab(*args, "--frequency-penalty", "2")
    assert plain.returncode == 0 and penalised.returncode == 0, penalised.stderr
    assert penalised.stdout.count("1") < plain.stdout.count("1"), (plain.stdout, penalised.stdout)


def test_cached_prompt_is_a_cache_hit(genlab_home):
    args = ("prompt", "--cache", "--temperature", "0", "--max-tokens", "8", "Name a river.")
    first, second = genlab(*args), genlab(*args)
    assert first.stdout == second.stdout and "cache hit" in second.stderr


@pytest.mark.parametrize("args, message", [
    (("prompt", "-m", "foo:bar", "hi"), "error: unknown model spec 'foo:bar'; use local"),
    (("prompt", "-m", "gemini:gemini-2.5-flash", "hi"), "error: GEMINI_API_KEY is not set"),
    (("prompt", "--temperature", "7", "hi"), "error: invalid request: temperature: Input should be less"),
    (("prompt", "--enum", "a,a", "hi"), "error: labels must be distinct (ignoring case); repeated: a"),
    (("prompt", "--enum", "yes no", "hi"), "error: one label (yes no) leaves nothing to decide; give at least two, "
                                           "separated by commas, e.g. --enum"),
    (("prompt", "--enum", ",", "hi"), "error: the label set is empty; give at least two labels, e.g. --enum"),
    (("prompt", "--json-schema", "/nonexistent.json", "hi"), "error: cannot read the schema file /nonexistent.json"),
    (("prompt", "--budget-usd", "1", "-m", "http://127.0.0.1:9/v1#m", "hi"), "error: no price is known for 'm'"),
    (("prompt", "--budget-tokens", "0", "hi"), "error: the budget of 0 tokens is spent"),
    (("prompt", "-m", "local:/missing.gguf", "hi"), "error: no GGUF file at /missing.gguf"),
    (("prompt", "-m", "hf:/missing-model", "hi"), "error: hf:/missing-model: no such folder; train one with genlab tune"),
    (("prompt", "-m", "hf:/", "hi"), "error: hf:/ is not a Hugging Face model folder (no config.json)"),
    (("prompt", "-m", "hf:HuggingFaceTB/SmolLM2-360M", "hi"), "error: hf:HuggingFaceTB/SmolLM2-360M: no such folder, "
                                                             "and genlab downloads no models; fetch it yourself"),
    (("prompt", ""), "error: the prompt is empty"),
    (("prompt", "caf\udcff"), "error: invalid request: the text holds '\\udcff', which is not a character"),   # byte 0xff
    (("prompt", "--stop", "", "hi"), "error: invalid request: stop: a stop sequence must not be empty"),
    (("prompt", "--presence-penalty", "3", "hi"), "error: invalid request: presence_penalty: Input should be less"),
    (("prompt", "--json-schema", '{"type": object}', "hi"), "error: the inline schema is not valid JSON"),
    (("prompt", "--json-schema", "{" + '"a": {' * 5000 + "}" * 5001, "hi"),
     "error: the inline schema is nested too deeply to read; fix it"),
    (("serve", "-m", "foo:bar"), "error: unknown model spec 'foo:bar'"),
])
def test_user_errors_are_one_line_without_traceback(args, message):
    result = genlab(*args)
    assert result.returncode != 0
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_malformed_schema_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "objectx"}')
    result = genlab("prompt", "--json-schema", str(bad), "hi")
    assert result.returncode == 1 and "malformed JSON schema" in result.stderr and "Traceback" not in result.stderr
    bad.write_text("{oops")
    result = genlab("prompt", "--json-schema", str(bad), "hi")
    assert result.returncode == 1 and "is not valid JSON" in result.stderr


def test_unreachable_url_is_one_line(monkeypatch):
    from conftest import free_port

    result = genlab("prompt", "-m", f"http://127.0.0.1:{free_port()}/v1#m", "hi", env={"GENLAB_MAX_RETRIES": "0"})
    assert result.returncode == 1 and result.stderr.startswith("error: cannot reach http://127.0.0.1:")
    assert "Traceback" not in result.stderr


def test_a_file_that_is_not_utf8_is_one_line_naming_the_fix(tmp_path):
    latin = tmp_path / "notes.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    for args in (("classify", str(latin), "-l", "a,b"), ("classify", "-l", str(latin)), ("eval", "run", str(latin)),
                 ("evolve", "score", "bin-packing", str(latin)), ("evolve", str(latin))):
        result = genlab(*args, stdin="x\n")
        assert result.returncode == 1 and "Traceback" not in result.stderr, args   # a UnicodeDecodeError before
        assert result.stderr.startswith(f"error: {latin} is not UTF-8 text (byte 3); convert it with `iconv -t utf-8`")


def test_what_the_user_typed_is_printed_as_typed(genlab_home):
    # Rich markup would drop "[bar]" and fail on "[/x]" (a traceback in place of the error).
    result = genlab("prompt", "--model", "foo[bar][/x]:m", "hi")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: unknown model spec 'foo[bar][/x]:m'")


def test_usage_totals(genlab_home):
    genlab("prompt", "--max-tokens", "5", "Hi")
    result = genlab("usage", "--json")
    rows = json.loads(result.stdout)
    assert rows[0]["model"] == "local" and rows[0]["calls"] == 1 and rows[0]["cost_usd"] == 0
    table = genlab("usage")
    assert "local" in table.stdout and "total: $0.000000" in table.stdout


def test_a_turn_the_model_refuses_is_reported_and_the_chat_goes_on(genlab_home):
    """A message longer than the context, then /reset and another: the session survives the
    failed turn (it ended there), which is not kept in the history; exit 1 tells a script."""
    result = genlab("chat", "--max-tokens", "6", "--temperature", "0",
                    stdin="word " * 9000 + "\n/reset\nSay hi.\n/exit\n")
    assert result.returncode == 1
    assert "error: embedded model rejected the request: the request is" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout.strip()   # the second turn was answered
    rows = Store(genlab_home / "genlab.db").execute("SELECT prompt_tokens, error FROM calls ORDER BY id")
    assert rows[-1]["error"] is None and rows[-1]["prompt_tokens"] < 100


def test_models_lists_backends_and_key_status():
    result = genlab("models", env={"GEMINI_API_KEY": "x", "GENLAB_THREADS": ""})
    assert result.returncode == 0
    assert "key in GEMINI_API_KEY" in result.stdout and "set OPENAI_API_KEY" in result.stdout
    assert "openai:MODEL[@VOICE]" in result.stdout   # brackets are text, not rich markup
    assert "ready" in result.stdout
    cores = len(os.sched_getaffinity(0))
    assert f"use {cores} threads (GENLAB_THREADS) on {cores} usable cores" in result.stdout
    assert "GENLAB_THREADS=" not in result.stderr
    over = genlab("models", env={"GENLAB_THREADS": str(cores + 2)})
    assert over.returncode == 0 and f"GENLAB_THREADS={cores + 2} is more than the {cores} cores" in over.stderr


def test_ctrl_c_while_the_embedded_model_streams_exits_130_without_a_crash(genlab_home):
    """Ctrl-C while the embedded model streamed an answer killed the process with SIGABRT
    ("FATAL: exception not rethrown"): Python tore the process down under the thread still
    inside llama.cpp (test_local.py has the same for a call in a thread of its own)."""
    import signal

    command = [sys.executable, "-m", "genlab.cli", "prompt", "--max-tokens", "2000", "--temperature", "1",
               "Write a very long story about a lighthouse keeper."]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's
    assert process.stdout.read(1)              # the answer has begun
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "FATAL" not in stderr and "Traceback" not in stderr, stderr


def test_version_is_the_installed_packages():
    from importlib.metadata import version

    result = genlab("--version")
    assert result.returncode == 0 and result.stdout == f"genlab {version('genlab')}\n"


def test_chat_reads_turns_from_stdin(genlab_home):
    result = genlab("chat", "--max-tokens", "10", "--temperature", "0", stdin="Hello\nWhat did I say?\n/exit\n")
    assert result.returncode == 0, result.stderr
    rows = Store(genlab_home / "genlab.db").execute("SELECT prompt_tokens FROM calls ORDER BY id")
    assert len(rows) == 2 and rows[1]["prompt_tokens"] > rows[0]["prompt_tokens"]  # history is sent


def test_training_flags_are_derived_from_train_options(monkeypatch, tmp_path):
    """The flags every tune/distill command shares come from TrainOptions, defaults included
    (the training itself is replaced: this checks the wiring only)."""
    from typer.testing import CliRunner

    from genlab.cli import app
    from genlab.train.trainer import TrainOptions

    seen = {}
    monkeypatch.setattr("genlab.cli.train._report", lambda result: None)
    monkeypatch.setattr("genlab.train.sft.tune_sft", lambda data, options, progress=None: seen.update(sft=options))
    monkeypatch.setattr("genlab.train.distill.distill_logits",
                        lambda data, options, **kw: seen.update(logits=options))
    runner = CliRunner()
    result = runner.invoke(app, ["tune", "sft", "d.jsonl", "-o", str(tmp_path / "a"), "--lora", "--max-steps", "7"])
    assert result.exit_code == 0, result.output
    sft = seen["sft"]
    assert (sft.max_steps, sft.lora, sft.learning_rate, sft.base) == (7, True, 1e-4, "local")
    assert (sft.batch_size, sft.max_length, sft.save_steps) == (TrainOptions.batch_size, TrainOptions.max_length,
                                                                TrainOptions.save_steps)
    result = runner.invoke(app, ["distill", "logits", "d.jsonl", "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert (seen["logits"].learning_rate, seen["logits"].base, seen["logits"].lora) == (1e-4, None, False)
    import re
    assert not re.search(r"(^|│)\s+--lora\s", runner.invoke(app, ["distill", "logits", "--help"]).output, re.M)
    assert "x>=2" in runner.invoke(app, ["tune", "kto", "--help"]).output  # KTO's own batch minimum


def test_help_reads_as_paragraphs_and_keeps_brackets():
    """Help text is Markdown: a docstring's line breaks do not survive into the page (an
    80-column terminal would show them as ragged lines), and "[options]" is not a markup tag."""
    from typer.testing import CliRunner

    from genlab.cli import app

    runner = CliRunner(env={"COLUMNS": "200"})
    page = runner.invoke(app, ["eval", "run", "--help"]).output
    assert "Exit code 0 when the gate holds, 100 when a row fails or errors (or the suite's gate," in page
    assert "genlab evolve SPEC [options] starts a run" in runner.invoke(app, ["evolve", "--help"]).output


def test_every_help_page_shows_its_examples_one_per_line():
    """Two example lines in one paragraph of a docstring are joined into one unusable line."""
    import typer
    from typer.testing import CliRunner

    from genlab.cli import app

    def commands(command, path):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, [*path, name])

    runner, pages = CliRunner(env={"COLUMNS": "250"}), 0
    for path in commands(typer.main.get_command(app), []):
        page = runner.invoke(app, [*path, "--help"]).output
        joined = [line for line in page.splitlines()          # "a && genlab b" is one example
                  if len(re.findall(r"(?:^|\s)genlab [a-z]", re.sub(r"(&&|\|) genlab", "", line))) > 1]
        assert not joined, f"genlab {' '.join(path)} --help: {joined[0].strip()}"
        pages += 1
    assert pages > 40          # every command was walked


def test_every_command_the_docs_show_parses():
    """The README, docs/ and the help pages show 107 genlab commands to copy; each must still
    parse (its command, options and values) after an option is renamed or removed."""
    import glob
    import shlex

    import typer

    from genlab.cli import app

    root, repo = typer.main.get_command(app), Path(__file__).resolve().parent.parent

    def shown_in(path):                # (where, what follows "genlab") of each command a code block shows
        lang, joined = None, ""
        for number, line in enumerate((repo / path).read_text().splitlines(), 1):
            if line.startswith("```"):
                lang = None if lang is not None else line[3:].strip()
            elif lang in ("bash", "") and line.endswith("\\"):
                joined += line[:-1]
            elif lang == "bash" or (lang == "" and (joined or line.startswith("$ "))):  # bare: "$ genlab …"
                line, joined = (joined + line).removeprefix("$ "), ""
                if re.match(r"(\.venv/bin/)?genlab ", line):
                    yield f"{path}:{number}", line.split("genlab ", 1)[1]

    def in_help(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            yield from in_help(sub, [*path, name])
        for example in re.findall(r"^\s*(?:Examples?: )?genlab (.*)", command.help or "", re.M):
            yield f"genlab {' '.join(path)} --help", example.removesuffix(", then")

    def parse(command, name, args):    # as click does, down to the command that would run
        context = command.make_context(name, args)
        if hasattr(command, "commands"):
            sub_name, sub, rest = command.resolve_command(context, [*context._protected_args, *context.args])
            parse(sub, f"{name} {sub_name}", rest)

    shown = [found for path in ["README.md", *sorted(glob.glob("docs/*.md", root_dir=repo))] for found in shown_in(path)]
    shown += in_help(root, [])
    failed = []
    for where, command in shown:
        command = re.split(r"\s+(?:#|\||&&|;|>|2>|&)(?:\s|$)", command)[0]       # the genlab part of a line
        if not re.search(r"\[|…|\.\.\.", command):                            # a synopsis, not a command
            try:
                parse(root, "genlab", shlex.split(command))
            except Exception as exc:  # noqa: BLE001 - click's usage errors, reported together below
                failed.append(f"{where}: genlab {command}: {getattr(exc, 'format_message', exc.__str__)()}")
    assert failed == [] and len(shown) > 100, "\n".join(failed)


def test_every_option_says_what_it_does():
    """--temperature, --seed, --budget-usd and 36 other options, and a notebook's name in 11
    commands, showed a bare type in --help."""
    import typer

    from genlab.cli import app

    def options(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            yield from options(sub, [*path, name])
        yield from ((path, param.opts) for param in command.params
                    if param.name != "help" and not getattr(param, "help", None))

    assert list(options(typer.main.get_command(app), ["genlab"])) == []


def test_a_path_in_the_way_is_one_line_naming_it(tmp_path):
    """An OSError about a path the user gave is translated once, at the CLI's boundary."""
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    suite = Path(__file__).resolve().parent.parent / "examples" / "eval" / "summaries.yaml"
    for out, reason in ((blocker, "File exists"), (blocker / "run", "Not a directory")):
        result = genlab("eval", "run", str(suite), "--out", str(out))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip() == f"error: {out}: {reason}; a file is where a folder is needed; " \
                                        "choose another path", result.stderr
    # A folder the file system will not make: ENOENT as root (/proc takes no new entries), EACCES as a user.
    result = genlab("eval", "run", str(suite), "--out", "/proc/genlab-results")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert re.fullmatch(r"error: /proc/genlab-results: (No such file or directory; check the path, or choose another|"
                        r"Permission denied; this user has no permission there; choose another path)\n",
                        result.stderr), result.stderr


@pytest.mark.parametrize("args, option", [
    (("notebook", "briefing", "town", "--out", "{bad}/brief.md"), "--out"),
    (("ttc", "bench", "arith-1", "--limit", "2", "--json", "{bad}/curves.json"), "--json"),
    (("tune", "sft", "{data}", "-o", "{bad}/model"), "--output"),
    (("trailer", "{data}", "-o", "{bad}/trailer.mp4"), "--output"),
    (("feedback", "export", "{bad}/pairs.jsonl"), "OUTPUT"),
])
def test_an_output_that_cannot_be_written_is_refused_before_the_work(args, option, tmp_path, genlab_home):
    """As a normal user, a folder without write permission; here a file where a folder is
    needed (which root cannot write through either). The briefing once ran all its model
    calls, then lost them to the path."""
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n' * 3)
    if args[0] == "notebook":
        (tmp_path / "notes.md").write_text("The ferry leaves at nine. It returns at five.\n")
        assert genlab("notebook", "create", "town").returncode == 0
        assert genlab("notebook", "add", "town", str(tmp_path / "notes.md")).returncode == 0
    (tmp_path / "file").write_text("in the way")
    bad = tmp_path / "file" / "sub"
    result = genlab(*[a.format(bad=bad, data=data) for a in args])
    assert result.returncode == 1 and result.stderr.startswith(f"error: {option}: cannot write in {bad}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert Store(genlab_home / "genlab.db").execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0


@pytest.mark.parametrize("variable, value, message", [
    ("GENLAB_THREADS", "two", "GENLAB_THREADS='two': give a whole number of threads from 1 up, or unset it"),
    ("GENLAB_THREADS", "0", "GENLAB_THREADS='0': give a whole number of threads from 1 up"),   # taken as 1
    ("GENLAB_MAX_RETRIES", "x", "GENLAB_MAX_RETRIES='x': give a whole number of retries from 0 up"),
    ("GENLAB_TIMEOUT", "soon", "GENLAB_TIMEOUT='soon': give a number of seconds"),
])
def test_a_bad_setting_in_the_environment_is_one_line_naming_it(variable, value, message):
    model = "local" if variable == "GENLAB_THREADS" else "http://127.0.0.1:9/v1#m"
    result = genlab("prompt", "-m", model, "hi", env={variable: value})
    assert result.returncode == 1 and result.stderr.startswith(f"error: {message}"), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="reads Linux's per-core counters")
def test_busy_cores_sees_another_process_and_not_its_own_work():
    """Two busy processes on two cores made a 2.2 s answer take 15.9 s; a long command says
    so at a terminal before it starts (`note_busy_cores`)."""
    import threading

    from genlab.cli.common import BUSY_NOTE, busy_note
    from genlab.machine import busy_cores, usable_cores

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(0.5) >= min(0.8, usable_cores() * 0.8)   # one core's worth, however busy the rest
    finally:
        spinner.kill()
        spinner.wait()
    # This process's own work is not another's: a thread that spins adds a core's worth if it
    # is counted, on top of whatever the rest of the machine does (measured just before).
    rest = busy_cores(0.5)
    stop = time.monotonic() + 0.6
    own = threading.Thread(target=lambda: [None for _ in iter(lambda: time.monotonic() < stop, False)])
    own.start()
    alone = busy_cores(0.5)
    own.join()
    assert rest is not None and alone is not None and alone < rest + 0.5
    assert BUSY_NOTE <= 1 and busy_note(1.04, 2).startswith("note: other processes keep 1.0 of the 2 cores busy")
