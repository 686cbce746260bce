"""Notebooks on a real SQLite file with real embeddings: idempotent adds, re-indexing,
nothing lost on bad input, and retrieval that finds the evidence."""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest

from genlab.errors import ConfigError
from genlab.ground.notebook import Notebook, expand_paths, list_notebooks
from genlab.ground.retrieval import FUSION_DEPTH, RRF_K, NotebookSearch
from genlab.ground.sources import sentences_or_whole
from tests.conftest import VELMORA


def _rows(notebook):
    return notebook._db.execute("SELECT id, source_id, start, end, text FROM chunks ORDER BY id").fetchall()


def test_adding_an_unchanged_folder_again_changes_nothing(velmora):
    before = [tuple(r) for r in _rows(velmora)]
    report = velmora.add([VELMORA])
    assert report.added == [] and report.updated == [] and report.chunks == 0
    assert len(report.unchanged) == 5
    assert [tuple(r) for r in _rows(velmora)] == before


def test_every_chunk_points_into_its_sources_text(velmora):
    chunks, vectors = velmora.chunks()
    assert len(chunks) == vectors.shape[0] and vectors.shape[1] == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    for chunk in chunks:
        assert velmora.source_text(chunk.source_id)[chunk.start:chunk.end] == chunk.text
    pages = {c.page for c in chunks if c.path.endswith(".pdf")}
    assert pages == {1, 2, 3}


def test_a_changed_file_is_reindexed_and_its_old_chunks_go(velmora, tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(VELMORA, folder)
    velmora.add([folder / "ferry.txt"])                       # another path: a new source
    ferry = folder / "ferry.txt"
    ferry.write_text(ferry.read_text().replace("6.50 euros", "7.10 euros"))
    report = velmora.add([ferry])
    assert report.updated == [str(ferry.resolve())] and report.added == []
    texts = [c.text for c in velmora.chunks()[0] if c.path == str(ferry.resolve())]
    assert any("7.10 euros" in t for t in texts) and not any("6.50 euros" in t for t in texts)
    # The original copy of ferry.txt is still there, untouched.
    assert any("6.50 euros" in c.text for c in velmora.chunks()[0] if c.path == str((VELMORA / "ferry.txt").resolve()))


def _count(notebook, table):
    return notebook._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_removing_a_source_takes_its_chunks_and_vectors_and_nothing_else(velmora, tmp_path):
    sources = {os.path.basename(s.path): s for s in velmora.sources()}
    ferry, pdf = sources["ferry.txt"], sources["kestrel-island.pdf"]
    chunks, sentences = _count(velmora, "chunks"), _count(velmora, "sentences")
    for refs, message in ((["ferry.txt", "nowhere.md"], "'nowhere.md' is not a source here"),
                          ([str(tmp_path / "ferry.txt")], "is not a source here")):
        with pytest.raises(ConfigError, match=f"nothing was removed: .*{message}"):
            velmora.remove(refs)
        assert len(velmora.sources()) == len(sources)        # all or nothing
    removed = velmora.remove(["ferry.txt", str(pdf.id)])
    assert [s.id for s in removed] == [ferry.id, pdf.id]
    assert sorted(os.path.basename(s.path) for s in velmora.sources()) == sorted(set(sources) - {"ferry.txt",
                                                                                                "kestrel-island.pdf"})
    assert _count(velmora, "chunks") == chunks - ferry.chunks - pdf.chunks
    orphans = "SELECT COUNT(*) FROM sentences WHERE chunk_id NOT IN (SELECT id FROM chunks)"
    assert velmora._db.execute(orphans).fetchone()[0] == 0 and _count(velmora, "sentences") < sentences
    assert not any("6.50 euros" in c.text for c in velmora.chunks()[0])
    velmora.add([VELMORA])                                    # and it can be added back
    assert len(velmora.sources()) == len(sources) and _count(velmora, "chunks") == chunks


def test_a_source_tells_whether_its_file_changed_or_went(velmora, tmp_path):
    note = tmp_path / "tides.md"
    note.write_text("# Tides\n\nHigh tide in Velmora comes twice a day.\n")
    velmora.add([note])
    def state():
        return {os.path.basename(s.path): s.on_disk() for s in velmora.sources()}
    assert set(state().values()) == {"indexed"}
    note.write_text("# Tides\n\nHigh tide in Velmora comes three times a day.\n")
    assert state()["tides.md"] == "changed"
    note.unlink()
    assert state()["tides.md"] == "missing" and state()["ferry.txt"] == "indexed"


def test_an_interrupted_add_keeps_the_files_it_finished_and_the_same_add_resumes(velmora, monkeypatch):
    """Fault injection: Ctrl-C while the third file is embedded (a file per batch here)."""
    from typer.testing import CliRunner

    import genlab.ground.notebook as notebook_module
    from genlab.cli import app

    monkeypatch.setattr(notebook_module, "BATCH_CHUNKS", 1)
    real, seen = Notebook._encode, []

    def interrupted(self, texts, stage, *args):
        seen.append(stage)
        if seen.count("embedding") == 3:
            raise KeyboardInterrupt
        return real(self, texts, stage, *args)

    monkeypatch.setattr(Notebook, "_encode", interrupted)
    assert CliRunner().invoke(app, ["notebook", "create", "resume"]).exit_code == 0
    result = CliRunner().invoke(app, ["notebook", "add", "resume", str(VELMORA)])
    assert result.exit_code == 130
    assert "interrupted: the 2 files indexed before it stay in resume; the same command adds the rest" in result.output
    resumed = Notebook.open("resume")
    assert len(resumed.sources()) == 2 and all(s.chunks > 0 for s in resumed.sources())
    monkeypatch.setattr(Notebook, "_encode", real)
    report = resumed.add([VELMORA])
    assert len(report.unchanged) == 2 and len(report.added) == 3
    assert sorted(c.text for c in resumed.chunks()[0]) == sorted(c.text for c in velmora.chunks()[0])
    assert _count(resumed, "sentences") == _count(velmora, "sentences")


def test_one_bad_file_adds_nothing_unless_skipped(velmora, tmp_path):
    (tmp_path / "good.md").write_text("# Tides\n\nHigh tide in Velmora comes twice a day.\n")
    (tmp_path / "empty.txt").write_text("")
    before = velmora.chunk_count()
    with pytest.raises(ConfigError, match=r"nothing was added: .*empty.txt: the file is empty.*--skip-bad"):
        velmora.add([tmp_path])
    assert velmora.chunk_count() == before
    report = velmora.add([tmp_path], skip_bad=True)
    assert len(report.added) == 1 and "empty.txt" in report.skipped[0]
    assert velmora.chunk_count() == before + 1


def test_a_folder_gives_its_sources_not_hidden_ones_nor_linked_folders(tmp_path):
    (tmp_path / "notes" / "deep").mkdir(parents=True)
    (tmp_path / "notes" / "deep" / "b.md").write_text("# B\n")
    (tmp_path / "notes" / "a.txt").write_text("a")
    (tmp_path / "notes" / "picture.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes" / ".git").mkdir()
    (tmp_path / "notes" / ".git" / "c.txt").write_text("c")
    (tmp_path / "notes" / ".d.txt").write_text("d")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.txt").write_text("e")
    (tmp_path / "notes" / "link.md").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    found = expand_paths([tmp_path / "notes"])
    assert [p.relative_to(tmp_path / "notes").as_posix() for p in found] == ["a.txt", "deep/b.md"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder, so none can be made unreadable")
def test_an_unreadable_folder_is_named_and_can_be_skipped(velmora, tmp_path):
    (tmp_path / "good.md").write_text("# Tides\n\nHigh tide in Velmora comes twice a day.\n")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "secret.txt").write_text("kept from genlab")
    (tmp_path / "locked").chmod(0)
    before = velmora.chunk_count()
    try:
        with pytest.raises(ConfigError, match=r"nothing was added: .*locked: cannot read this folder.*--skip-bad"):
            velmora.add([tmp_path])
        assert velmora.chunk_count() == before
        report = velmora.add([tmp_path], skip_bad=True)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert len(report.added) == 1 and "locked: cannot read this folder" in report.skipped[0]
    assert velmora.chunk_count() == before + 1


def test_a_corpus_over_the_memory_setting_is_refused_before_any_work(velmora, tmp_path, monkeypatch):
    (tmp_path / "big.txt").write_text("The harbour master logs every boat. " * 3000)
    before = velmora.chunk_count()
    monkeypatch.setenv("GENLAB_NOTEBOOK_MAX_MB", "0.1")
    with pytest.raises(ConfigError, match=r"nothing was added: .* over GENLAB_NOTEBOOK_MAX_MB=0.1; raise that"):
        velmora.add([tmp_path / "big.txt"])
    assert velmora.chunk_count() == before


def test_an_interrupted_add_leaves_the_notebook_as_it_was(velmora, tmp_path, monkeypatch):
    (tmp_path / "new.md").write_text("# Boats\n\nThe lifeboat station opened in 1881.\n")
    before = [tuple(r) for r in _rows(velmora)]
    from genlab.ground import embed

    def interrupted(self, texts, progress=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(embed.Embedder, "encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        velmora.add([tmp_path / "new.md"])
    assert [tuple(r) for r in _rows(velmora)] == before


def test_names_and_unknown_notebooks_get_clear_errors(genlab_home):
    with pytest.raises(ConfigError, match="no notebook named 'nope' .*genlab notebook create nope"):
        Notebook.open("nope")
    with pytest.raises(ConfigError, match="notebook name '../x' is not allowed"):
        Notebook.create("../x")
    Notebook.create("a")
    with pytest.raises(ConfigError, match="notebook 'a' already exists"):
        Notebook.create("a")
    assert list_notebooks() == ["a"]
    Notebook.delete("a")
    assert list_notebooks() == []


def test_the_file_is_a_plain_sqlite_database(velmora):
    db = sqlite3.connect(velmora.path)
    assert db.execute("SELECT COUNT(*) FROM sources").fetchone()[0] == 5
    assert db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone()[0] == "all-MiniLM-L6-v2"


@pytest.mark.parametrize("method", ["bm25", "dense", "hybrid", "reranked"])
@pytest.mark.parametrize("question, evidence", [
    ("Who built the lighthouse at Harrow Point?", "Ada Rennick"),
    ("How much is a child's ferry ticket?", "3.25 euros"),
    ("When do puffins nest on Kestrel Island?", "April to early August"),
])
def test_each_retriever_finds_the_evidence_in_its_top_three(velmora, method, question, evidence):
    passages = NotebookSearch(velmora, method).search(question, 3)
    assert any(evidence in p.text for p in passages)
    assert all(p.similarity is not None for p in passages)


def test_hybrid_is_reciprocal_rank_fusion_of_the_two_lists(velmora):
    search = NotebookSearch(velmora)
    question = "Which ship was wrecked before the lighthouse was built?"
    bm25 = [i for i, _ in search.rank(question, "bm25", 50)]
    dense = [i for i, _ in search.rank(question, "dense", 50)]
    expected = {i: (1 / (60 + bm25.index(i) + 1) if i in bm25 else 0) + (1 / (60 + dense.index(i) + 1) if i in dense else 0)
                for i in set(bm25) | set(dense)}
    hybrid = search.rank(question, "hybrid", 5)
    assert [i for i, _ in hybrid] == sorted(expected, key=lambda i: (-expected[i], i))[:5]
    assert all(abs(score - expected[i]) < 1e-12 for i, score in hybrid)


def test_bm25_finds_nothing_for_words_the_notebook_lacks(velmora):
    assert NotebookSearch(velmora, "bm25").search("zeppelin quasar", 5) == []


def test_each_sentence_of_each_chunk_has_a_unit_vector(velmora):
    chunks, _ = velmora.chunks()
    owners, vectors = velmora.sentence_vectors()
    assert vectors.shape == (len(owners), 384)
    counts = np.bincount(owners, minlength=len(chunks))
    assert [int(n) for n in counts] == [len(sentences_or_whole(c.text)) for c in chunks]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_notebook_made_before_sentence_vectors_gets_them_once_on_first_search(velmora):
    owners, vectors = velmora.sentence_vectors()
    velmora._db.execute("DELETE FROM sentences")      # what a notebook of an earlier genlab holds
    stages = []
    search = NotebookSearch(Notebook.open("velmora"))
    found = search.search("Who built the lighthouse at Harrow Point?", 3)
    assert any("Ada Rennick" in p.text for p in found)
    again_owners, again_vectors = search.notebook.sentence_vectors(progress=lambda *a: stages.append(a))
    assert stages == []                               # indexed by the search, not again
    assert np.array_equal(again_owners, owners) and np.allclose(again_vectors, vectors, atol=1e-5)


def test_reranked_fuses_bm25_and_best_sentence_rankings_of_the_hybrid_candidates(velmora):
    search = NotebookSearch(velmora)
    question = "Which ship was wrecked before the lighthouse was built?"
    candidates = [i for i, _ in search.rank(question, "hybrid", FUSION_DEPTH)]
    bm25, sentence = search.bm25_scores(question), search.sentence_similarities(question)
    by_bm25 = sorted((i for i in candidates if bm25[i] > 0), key=lambda i: (-bm25[i], candidates.index(i)))
    by_sentence = sorted(candidates, key=lambda i: (-sentence[i], candidates.index(i)))
    expected = {i: (1 / (RRF_K + by_bm25.index(i) + 1) if i in by_bm25 else 0) + 1 / (RRF_K + by_sentence.index(i) + 1)
                for i in candidates}
    reranked = search.rank(question, "reranked", 5)
    assert [i for i, _ in reranked] == sorted(expected, key=lambda i: (-expected[i], i))[:5]


def test_each_chunks_sentence_similarity_is_its_best_sentence_after_a_partial_upgrade(velmora):
    # One chunk's sentences re-indexed last (higher row ids than later chunks' sentences).
    velmora._db.execute("DELETE FROM sentences WHERE chunk_id = (SELECT MIN(id) FROM chunks)")
    search = NotebookSearch(velmora)
    question = "How much is a child's ferry ticket?"
    found = search.sentence_similarities(question)
    owners, vectors = velmora.sentence_vectors()
    cosines = vectors @ search._query_vector(question)
    assert np.allclose(found, [cosines[owners == i].max() for i in range(len(search.chunks))])
