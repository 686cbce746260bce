"""Reading sources and chunking them: offsets, pages and the errors a user sees."""

from __future__ import annotations

import pytest
from pypdf import PdfReader, PdfWriter

from genlab.errors import ConfigError
from genlab.ground.sources import chunk_document, passage_sentences, read_source
from tests.conftest import VELMORA
from tests.pdf_writer import KESTREL_PAGES, write_pdf


@pytest.mark.parametrize("name", ["history.md", "ferry.txt", "library.html", "festival.md", "kestrel-island.pdf"])
def test_every_chunk_is_an_exact_span_of_its_page(name):
    document = read_source(VELMORA / name)
    chunks = chunk_document(document, size=300, overlap=60)
    assert len(chunks) >= 2
    for chunk in chunks:
        assert document.text[chunk.start:chunk.end] == chunk.text
        page = document.pages[chunk.page - 1]
        assert page.start <= chunk.start < chunk.end <= page.end     # never crosses a page
        assert len(chunk.text) <= 300
        assert chunk.text == chunk.text.strip()
    # Together the chunks cover every word of the document.
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(document.text) if not ch.isspace())


def test_chunks_of_a_text_end_at_boundaries_not_mid_word():
    document = read_source(VELMORA / "history.md")
    for chunk in chunk_document(document, size=300, overlap=60)[:-1]:
        following = document.text[chunk.end:chunk.end + 1]
        assert following.isspace() or following == ""


def test_pdf_pages_are_kept(tmp_path):
    path = write_pdf(tmp_path / "guide.pdf", KESTREL_PAGES, title="Kestrel guide")
    document = read_source(path)
    assert document.kind == "pdf" and document.title == "Kestrel guide"
    assert [p.number for p in document.pages] == [1, 2, 3]
    chunks = chunk_document(document)
    by_page = {c.page: c.text for c in chunks}
    assert "Puffins nest on the northern slopes" in by_page[2]
    assert "Petra Lind" in by_page[3]
    assert "Petra Lind" not in by_page[2]


def test_html_keeps_visible_text_and_title_only():
    document = read_source(VELMORA / "library.html")
    assert document.title == "Velmora Public Library: visiting and borrowing"
    assert "Tuesday to Friday: 10:00 to 19:00" in document.text
    assert "console.log" not in document.text and "font-family" not in document.text


def test_markdown_title_comes_from_its_heading():
    assert read_source(VELMORA / "history.md").title == "A short history of Velmora"
    assert read_source(VELMORA / "ferry.txt").title == "ferry"


def test_encrypted_pdf_is_refused_with_the_fix(tmp_path):
    plain = write_pdf(tmp_path / "plain.pdf", KESTREL_PAGES)
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    locked = tmp_path / "locked.pdf"
    with open(locked, "wb") as handle:
        writer.write(handle)
    with pytest.raises(ConfigError, match=r"locked.pdf: the PDF is encrypted; save a decrypted copy"):
        read_source(locked)


@pytest.mark.parametrize("name, content, message", [
    ("empty.md", b"  \n", r"empty.md: the file is empty"),
    ("broken.pdf", b"%PDF-1.4\nthis is not a pdf", r"broken.pdf: not a readable PDF"),
    ("latin1.txt", "caf\u00e9".encode("latin-1"), r"latin1.txt: not UTF-8 text .*iconv"),
    ("notes.docx", b"PK\x03\x04", r"notes.docx: unsupported file type '.docx'; genlab reads"),
])
def test_bad_files_get_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_source(path)


def test_a_pipe_is_refused_not_waited_on(tmp_path):
    """A named pipe called notes.txt in a source folder held genlab notebook add for ever."""
    import os

    pipe = tmp_path / "notes.txt"
    os.mkfifo(pipe)
    with pytest.raises(ConfigError, match=r"notes.txt: not a regular file \(a pipe or a device\)"):
        read_source(pipe)


def test_pdf_without_text_asks_for_ocr(tmp_path):
    path = write_pdf(tmp_path / "scan.pdf", [[], []])
    with pytest.raises(ConfigError, match="no extractable text .*OCR"):
        read_source(path)


def test_passage_sentences_join_wrapped_lines_and_stop_at_blank_lines():
    text = "The lighthouse was\nbuilt in 1847. It has\n9 rooms.\n\nAdult single: 6.50 euros\n\n  grammar ::= rule\n  | other"
    assert passage_sentences(text) == ["The lighthouse was built in 1847.", "It has 9 rooms.",
                                       "Adult single: 6.50 euros", "grammar ::= rule | other"]
    assert passage_sentences("   \n\n ") == []
