"""Read a source file into text, and cut the text into chunks that keep their offsets.

A `Document` is the extracted text of one file plus where each page starts in it, so a
chunk is always ``document.text[start:end]`` (character offsets) and knows its page.
Chunks never cross a page, so a citation names one page.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from genlab.errors import ConfigError

SUFFIXES = {".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
            ".html": "html", ".htm": "html"}
#: Chunk length in characters. all-MiniLM-L6-v2 reads 256 word pieces (about 1,000
#: characters of English); shorter chunks make citations point at narrower spans.
CHUNK_CHARS = 700
CHUNK_OVERLAP = 120
#: A sentence runs to . ! or ? followed by a space or the end (so "2.3 km" stays whole), or to a newline.
SENTENCE = re.compile(r"[^\n]+?(?:[.!?]+[\"')\]]*(?=\s|$)|(?=\n)|$)")


@dataclass(frozen=True)
class Page:
    number: int          # 1-based; text files are one page
    start: int           # offset of the page's first character in Document.text
    end: int


@dataclass(frozen=True)
class Document:
    path: Path
    kind: str            # pdf, markdown, text, html
    title: str
    text: str
    pages: tuple[Page, ...]
    sha256: str          # of the file's bytes: an unchanged file is not re-indexed


@dataclass(frozen=True)
class ChunkSpan:
    page: int
    start: int
    end: int
    text: str


def supported(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def read_source(path: Path) -> Document:
    """Read one file; raise ConfigError naming the file and the fix when it cannot be used."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: unsupported file type '{path.suffix or '(none)'}'; "
                          f"genlab reads {', '.join(sorted(set(SUFFIXES)))}")
    if path.exists() and not path.is_file():
        # A pipe would hang the add until something writes to it; and a source is kept by its
        # path, to be checked and read again (genlab notebook refresh).
        raise ConfigError(f"{path}: not a regular file (a pipe or a device); save its contents to a file and add that")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if not data.strip():
        raise ConfigError(f"{path}: the file is empty; add text to it or leave it out")
    digest = hashlib.sha256(data).hexdigest()
    if kind == "pdf":
        title, pages = _read_pdf(path, data)
    else:
        try:
            raw = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); convert it with "
                              "`iconv -t utf-8` first") from exc
        if kind == "html":
            title, text = _html_text(raw)
        else:
            title, text = (_markdown_title(raw) if kind == "markdown" else ""), raw
        pages = [text]
    text, page_spans = _join_pages(pages)
    if not text.strip():
        raise ConfigError(f"{path}: no text could be extracted")
    return Document(path, kind, title or path.stem, text, page_spans, digest)


def _join_pages(pages: list[str]) -> tuple[str, tuple[Page, ...]]:
    parts, spans, offset = [], [], 0
    for number, page in enumerate(pages, 1):
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(page)
        spans.append(Page(number, offset, offset + len(page)))
        offset += len(page)
    return "".join(parts), tuple(spans)


def _read_pdf(path: Path, data: bytes) -> tuple[str, list[str]]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf logs each repair of a slightly broken file ("EOF marker not found") to stderr;
    # a file it cannot read raises, and that error is the one the user sees.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypts_without_password(reader):
            raise ConfigError(f"{path}: the PDF is encrypted; save a decrypted copy "
                              "(e.g. `qpdf --decrypt --password=… in.pdf out.pdf`) and add that")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except ConfigError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ConfigError(f"{path}: not a readable PDF ({exc}); check that the file is complete") from exc
    except Exception as exc:  # pypdf raises many kinds on broken files; the user's fix is the same
        if type(exc).__module__.startswith("pypdf"):
            raise ConfigError(f"{path}: not a readable PDF ({exc})") from exc
        raise
    if not any(p.strip() for p in pages):
        raise ConfigError(f"{path}: the PDF has no extractable text (a scan?); run OCR on it "
                          "(e.g. ocrmypdf) and add the result")
    return str(title), pages


def _decrypts_without_password(reader) -> bool:
    """Some PDFs are encrypted with an empty user password (viewers open them silently)."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # wrong algorithm support, bad key: either way we cannot read it
        return False


def _markdown_title(text: str) -> str:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
    return match.group(1) if match else ""


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, with a line break after each block element."""

    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
              "header", "footer", "table", "ul", "ol", "pre", "blockquote", "dd", "dt"}
    HIDDEN = {"script", "style", "noscript", "template", "head"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.hidden = 0
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1
        if tag == "title":
            self.in_title = True
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        if tag == "title":
            self.in_title = False
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.in_title:
            self.title.append(data)
        elif not self.hidden:
            self.parts.append(data)


def _html_text(raw: str) -> tuple[str, str]:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return " ".join("".join(parser.title).split()), text


def chunk_document(document: Document, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[ChunkSpan]:
    """Cut each page into chunks of at most ``size`` characters, ending at a paragraph,
    sentence or word boundary where one falls in the chunk's second half."""
    chunks = []
    for page in document.pages:
        start = _skip_space(document.text, page.start, page.end)
        while start < page.end:
            cut = min(start + size, page.end)
            if cut < page.end:
                cut = _boundary(document.text, start + size // 2, cut)
            end = _trim_end(document.text, start, cut)
            if end > start:
                chunks.append(ChunkSpan(page.number, start, end, document.text[start:end]))
            if cut >= page.end:
                break
            # Step back by the overlap, to a word start, but always move forward.
            following = max(end - overlap, start + 1)
            while following < end and not document.text[following - 1].isspace():
                following += 1
            start = _skip_space(document.text, following, page.end)
    return chunks


def passage_sentences(text: str) -> list[str]:
    """The sentences of a passage: lines of a paragraph are joined first, since sources wrap
    lines mid-sentence (a PDF page, a hard-wrapped text file); a blank line always ends one."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        joined = " ".join(paragraph.split())
        sentences += [m.group().strip() for m in SENTENCE.finditer(joined) if m.group().strip()]
    return sentences


def sentences_or_whole(text: str) -> list[str]:
    """A passage's sentences, or the passage whole when it has none: what gets a vector of its
    own, so every chunk has at least one and none looks unindexed."""
    return passage_sentences(text) or [text]


def _boundary(text: str, low: int, high: int) -> int:
    window = text[low:high]
    # Before a Markdown heading, else at a paragraph, a sentence, a word.
    for pattern in (r"\n+(?=#{1,6}\s)", r"\n\s*\n", r"[.!?][\"')\]]?\s", r"\s"):
        matches = list(re.finditer(pattern, window))
        if matches:
            return low + matches[-1].end()
    return high


def _skip_space(text: str, start: int, end: int) -> int:
    while start < end and text[start].isspace():
        start += 1
    return start


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end
