"""`genlab notebook …` and `genlab ask`, run as a user runs them."""

from __future__ import annotations

import json
import re
import shutil

from genlab.store import Store
from tests.conftest import VELMORA, VELMORA_QA, free_port
from tests.pdf_writer import KESTREL_PAGES, write_pdf
from tests.test_cli import genlab


def test_create_add_ask_json_in_geminis_shape(genlab_home, tmp_path):
    assert genlab("notebook", "create", "town").returncode == 0
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "guide.pdf", KESTREL_PAGES)
    (folder / "notes.md").write_text((VELMORA / "history.md").read_text())
    added = genlab("notebook", "add", "town", str(folder))
    assert added.returncode == 0, added.stderr
    assert "added" in added.stdout and "notebook town has" in added.stdout
    again = genlab("notebook", "add", "town", str(folder))
    assert again.stdout.count("unchanged") == 2 and "0 new chunks" in again.stdout

    result = genlab("ask", "town", "Who is the warden of Kestrel Island?", "--json", "--check")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"question", "answer", "abstained", "grounding_metadata", "groundedness"}
    metadata = data["grounding_metadata"]
    assert set(metadata) == {"grounding_chunks", "grounding_supports"}
    for chunk in metadata["grounding_chunks"]:
        assert set(chunk) == {"source", "title", "page", "start", "end", "text"}
    assert any(c["page"] == 3 and "Petra Lind" in c["text"] for c in metadata["grounding_chunks"])
    for support in metadata["grounding_supports"]:
        assert set(support) == {"segment", "grounding_chunk_indices", "confidence_scores"}
        assert set(support["segment"]) == {"start_index", "end_index", "text"}
    rows = Store(genlab_home / "genlab.db").execute("SELECT source FROM calls")
    assert [r["source"] for r in rows] == ["ground"]


def test_create_takes_its_sources_at_once(genlab_home, tmp_path):
    """`genlab notebook create NAME DIR` was "Got unexpected extra argument(s)"."""
    missing = genlab("notebook", "create", "town", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "nowhere: no such file or folder" in missing.stderr
    assert "no notebooks yet" in genlab("notebook", "list").stdout      # refused before it was made
    (tmp_path / "notes.md").write_text((VELMORA / "history.md").read_text())
    created = genlab("notebook", "create", "town", str(tmp_path))
    assert created.returncode == 0, created.stderr
    assert "created notebook town" in created.stdout and f"added {tmp_path / 'notes.md'}" in created.stdout
    assert re.search(r"town +│ 1 +│ [1-9]", genlab("notebook", "list").stdout)


def test_a_pdf_pypdf_repairs_is_added_without_its_log_on_stderr(genlab_home, tmp_path):
    """pypdf logs each repair of a slightly broken file ("incorrect startxref pointer") to
    stderr; the file reads as it is, and the log is not the user's concern."""
    assert genlab("notebook", "create", "town").returncode == 0
    whole = write_pdf(tmp_path / "guide.pdf", KESTREL_PAGES).read_bytes()
    (tmp_path / "guide.pdf").write_bytes(re.sub(rb"startxref\n\d+", b"startxref\n99", whole))
    added = genlab("notebook", "add", "town", str(tmp_path / "guide.pdf"))
    assert added.returncode == 0 and "notebook town has 3 chunks" in added.stdout, added.stderr
    assert "startxref" not in added.stderr


def test_unanswerable_question_prints_the_abstention(velmora):
    result = genlab("ask", "velmora", "What is the capital of Australia?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The sources do not say."
    assert re.search(r"\(the closest passage reaches cosine 0\.[0-2]\d\d with the question, under 0\.35\)",
                     result.stderr)   # why, beside the answer


def test_user_mistakes_are_one_line_errors(genlab_home, tmp_path):
    for args, message in [
        (("ask", "nope", "Why?"), "error: no notebook named 'nope' (notebooks: none yet); create it with"),
        (("notebook", "add", "nope", str(tmp_path)), "error: no notebook named 'nope'"),
        (("notebook", "create", "bad/name"), "error: notebook name 'bad/name' is not allowed"),
        (("ask", "nope", "  "), "error: the question is empty; give some words"),
        (("notebook", "search", "nope", ""), "error: the query is empty; give some words"),
    ]:
        result = genlab(*args)
        assert result.returncode == 1
        assert result.stderr.strip().startswith(message), result.stderr
        assert "Traceback" not in result.stderr
    assert genlab("notebook", "create", "n").returncode == 0
    (tmp_path / "blank.md").write_text("")
    result = genlab("notebook", "add", "n", str(tmp_path / "blank.md"))
    assert result.returncode == 1 and "blank.md: the file is empty" in result.stderr
    result = genlab("notebook", "add", "n", str(tmp_path / "missing.pdf"))
    assert result.returncode == 1 and "missing.pdf: no such file or folder" in result.stderr
    for command in (("notebook", "add", "n"), ("trailer",)):       # no downloads: a URL is named as one
        result = genlab(*command, "https://example.com/guide.pdf")
        assert result.returncode == 1 and "error: https://example.com/guide.pdf: genlab reads files on this " \
            "machine and downloads nothing" in result.stderr
    result = genlab("notebook", "audio", "n", "--out", str(tmp_path / "x.mp3"))
    assert result.returncode == 1 and "genlab writes the audio overview as WAV" in result.stderr
    # Notebook n has no sources: asking it is a mistake to name, not a question the sources miss.
    for args in (("ask", "n", "Why?"), ("ask", "notebook:n", "Why?"), ("notebook", "search", "n", "ferry"),
                 ("notebook", "briefing", "n")):
        result = genlab(*args)
        assert result.returncode == 1 and result.stdout == "", args
        assert "error: notebook n has no sources yet; add some with `genlab notebook add n" in result.stderr


def test_eval_prints_retrieval_metrics_per_retriever(velmora, tmp_path):
    result = genlab("notebook", "eval", "velmora", str(VELMORA_QA), "--no-answers", "--out", str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    for method in ("bm25", "dense", "hybrid", "reranked"):
        assert method in result.stdout
    data = json.loads((tmp_path / "e.json").read_text())
    for method in ("bm25", "dense", "hybrid", "reranked"):
        metrics = data["retrieval"][method]
        assert 0.5 < metrics["recall@5"] <= 1.0 and 0 < metrics["mrr"] <= 1 and 0 < metrics["ndcg@10"] <= 1


def test_a_users_file_beside_a_new_output_is_not_written_over(velmora, tmp_path):
    from genlab.cli.common import output_file

    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    for args in (("briefing", "velmora", "--out", str(tmp_path / "notes.md")),
                 ("audio", "velmora", "--out", str(tmp_path / "notes.wav"))):
        result = genlab("notebook", *args)
        assert result.returncode == 1, result.stderr
        assert f"genlab also writes {notes} beside it, and that file exists" in result.stderr
    assert notes.read_text() == '{"mine": true}' and not (tmp_path / "notes.md").exists()
    (tmp_path / "notes.md").write_text("# an earlier briefing")    # both there: a rerun, which replaces them
    assert output_file(tmp_path / "notes.md", "--out", ".md", beside=(".json",)) == tmp_path / "notes.md"


def test_eval_refuses_a_mistyped_model_before_measuring_retrieval(velmora):
    for option in ("--model", "--judge"):
        result = genlab("notebook", "eval", "velmora", str(VELMORA_QA), option, "nosuch:x")
        assert result.returncode == 1 and result.stdout == "", result.stdout    # no retrieval table first
        assert result.stderr.startswith("error: unknown model spec 'nosuch:x'")


def test_eval_names_the_bad_line(velmora, tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "When was the lighthouse built?", "evidence": "built in 1847"}\n'
                  '{"question": "Where?", "evidence": "text that is nowhere"}\n')
    result = genlab("notebook", "eval", "velmora", str(qa), "--no-answers")
    assert result.returncode == 1
    assert "qa.jsonl:2: no chunk of notebook 'velmora' contains the evidence" in result.stderr


def test_audio_overview_end_to_end(velmora, tmp_path):
    result = genlab("notebook", "audio", "velmora", "--items", "1", "--out", str(tmp_path / "o.wav"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "o.json").read_text())
    assert record["duration_s"] > 5 and set(record["voices"]) == {"Alex", "Sam"}
    assert {t["speaker"] for t in record["turns"]} == {"Alex", "Sam"}
    transcript = (tmp_path / "o.md").read_text()
    assert "**Alex:**" in transcript and "**Sam:**" in transcript and "## Sources" in transcript


def test_list_sources_search_and_delete(velmora):
    listed = genlab("notebook", "list")
    assert "velmora" in listed.stdout and "all-MiniLM-L6-v2" in listed.stdout
    sources = genlab("notebook", "sources", "velmora")
    assert "kestrel-island.pdf" in sources.stdout and "pdf" in sources.stdout and "indexed" in sources.stdout
    found = genlab("notebook", "search", "velmora", "ferry fares for a car", "--method", "bm25", "-k", "2")
    assert found.returncode == 0 and "ferry" in found.stdout
    removed = genlab("notebook", "remove", "velmora", "ferry.txt")
    assert removed.returncode == 0 and "removed " in removed.stdout and "ferry.txt" in removed.stdout
    assert "ferry.txt" not in genlab("notebook", "sources", "velmora").stdout
    again = genlab("notebook", "remove", "velmora", "ferry.txt")
    assert again.returncode == 1 and "nothing was removed: 'ferry.txt' is not a source here" in again.stderr
    assert genlab("notebook", "delete", "velmora", "--yes").returncode == 0
    assert "no notebooks yet" in genlab("notebook", "list").stdout


def test_refresh_reindexes_changed_files_and_names_missing_ones(genlab_home, tmp_path):
    tides, ferry = tmp_path / "tides.md", tmp_path / "ferry.md"
    tides.write_text("# Tides\n\nHigh tide in Velmora comes twice a day.\n")
    ferry.write_text("# Ferry\n\nThe ferry leaves at nine.\n")
    assert genlab("notebook", "create", "n").returncode == 0
    assert genlab("notebook", "add", "n", str(tmp_path)).returncode == 0
    assert "no file of notebook n changed" in genlab("notebook", "refresh", "n").stdout
    tides.write_text("# Tides\n\nHigh tide in Velmora comes three times a day.\n")
    ferry.unlink()
    listed = genlab("notebook", "sources", "n")
    assert "changed" in listed.stdout and "missing" in listed.stdout and "genlab notebook refresh n" in listed.stderr
    result = genlab("notebook", "refresh", "n")
    assert result.returncode == 0, result.stderr
    assert f"re-indexed {tides.resolve()} (changed)" in result.stdout and "1 new chunks" in result.stdout
    assert "ferry.md (still answered from; to drop it: genlab notebook remove n" in result.stderr
    found = genlab("notebook", "search", "n", "high tide", "--method", "bm25", "-k", "1").stdout
    assert "three times" in found and "twice" not in found


def test_an_answer_citing_a_file_changed_since_it_was_indexed_says_so(genlab_home, tmp_path, monkeypatch):
    """The answer quotes the file as it was indexed; the user is told, and how to re-index.
    A scripted model (control logic: which cited file is stale), a real notebook and files."""
    from typer.testing import CliRunner

    from genlab import models
    from genlab.cli import app
    from genlab.models import Model
    from tests.fake_backend import FakeBackend

    tides, ferry = tmp_path / "tides.md", tmp_path / "ferry.md"
    tides.write_text("# Tides\n\nHigh tide in Velmora comes twice a day.\n")
    ferry.write_text("# Ferry\n\nThe ferry to Velmora leaves at nine every day.\n")
    assert genlab("notebook", "create", "n").returncode == 0
    assert genlab("notebook", "add", "n", str(tmp_path)).returncode == 0
    ferry.write_text("# Ferry\n\nThe ferry to Velmora leaves at ten every day.\n")

    def ask(question: str, draft: str):
        model = Model("scripted", FakeBackend([draft]), source="ground")
        monkeypatch.setattr(models, "get_model", lambda *a, **kw: model)
        result = CliRunner().invoke(app, ["ask", "n", question])
        assert result.exit_code == 0, result.output
        return result.output

    tides_answer = ask("How often does high tide come in Velmora?", "High tide comes twice a day [1].")
    assert "twice a day" in tides_answer and "since it was indexed" not in tides_answer   # the cited file is as it was
    ferry_answer = ask("When does the ferry to Velmora leave?", "The ferry leaves at nine [1].")
    assert f"stale: {ferry.resolve()} has changed since it was indexed" in ferry_answer
    assert "genlab notebook refresh n" in ferry_answer
    ferry.unlink()
    ferry_answer = ask("When does the ferry to Velmora leave?", "The ferry leaves at nine [1].")
    assert f"stale: {ferry.resolve()} has been removed" in ferry_answer and "genlab notebook remove n" in ferry_answer


def test_a_notebook_whose_embedder_folder_went_says_so(genlab_home, tmp_path):
    from genlab.ground.embed import default_embedder_path

    missing = genlab("notebook", "create", "m", "--embedder", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and f"embedder folder {tmp_path / 'nowhere'} does not exist" in missing.stderr
    embedder = tmp_path / "emb"
    shutil.copytree(default_embedder_path(), embedder)     # stands for a folder of distill embeddings
    (tmp_path / "tides.md").write_text("# Tides\n\nHigh tide in Velmora comes twice a day.\n")
    assert genlab("notebook", "create", "n", "--embedder", str(embedder)).returncode == 0
    assert genlab("notebook", "add", "n", str(tmp_path / "tides.md")).returncode == 0
    shutil.rmtree(embedder)
    result = genlab("notebook", "search", "n", "high tide", "--method", "dense")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"embedder folder {embedder.resolve()} does not exist" in result.stderr and "needs it back" in result.stderr


def test_a_question_that_is_not_text_is_one_line_naming_it(velmora):
    # "\udcff": the byte 0xff on the command line. The embedder's tokenizer raised a TypeError on it.
    for args in (("ask", "velmora", "caf\udcff ferry?"), ("notebook", "search", "velmora", "caf\udcff")):
        result = genlab(*args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("error: the text holds '\\udcff', which is not a character"), result.stderr


def test_chat_answers_each_line_until_exit(velmora):
    result = genlab("notebook", "chat", "velmora",
                    stdin="/ferry\nHow many moons does Jupiter have?\n/exit\nignored\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The sources do not say."   # one answer: the typo was not asked
    assert "no command /ferry; /help, /exit leaves" in result.stderr


def test_a_question_the_model_cannot_answer_is_reported_and_the_chat_goes_on(velmora):
    model = f"http://127.0.0.1:{free_port()}/v1#m"    # nothing listens there
    result = genlab("notebook", "chat", "velmora", "-m", model, stdin="When was the lighthouse built?\n"
                    "How much is an adult single ferry fare?\n/exit\n", env={"GENLAB_MAX_RETRIES": "0"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("error: cannot reach http://127.0.0.1:") == 2, result.stderr   # both were asked


def test_a_coverage_outside_zero_to_one_is_refused_before_any_work(genlab_home):
    result = genlab("ask", "velmora", "When was the lighthouse built?", "--min-coverage", "1.5")
    assert result.returncode == 2 and "--min-coverage" in result.stderr and "less than or equal to 1" in result.stderr
