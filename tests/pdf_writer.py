"""Write small text PDFs (one Helvetica text block per page) for the grounding tests and the
example notebook. Standard Type 1 fonts need no embedding, so the files stay tiny and pypdf
extracts their text exactly."""

from __future__ import annotations

from pathlib import Path


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: list[list[str]], title: str = "") -> Path:
    """Write ``pages`` (each a list of lines) to ``path`` as a PDF and return the path."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % i for i in page_ids)
                   + b"] /Count %d >>" % len(pages))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        content = "BT /F1 11 Tf 14 TL 56 780 Td " + " ".join(f"({_escape(l)}) '" for l in lines) + " ET"
        stream = content.encode("latin-1")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >>"
                       b" /Contents %d 0 R >>" % (page_ids[i] + 1))
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    if title:
        objects.append(b"<< /Title (" + _escape(title).encode("latin-1") + b") >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    info = b" /Info %d 0 R" % len(objects) if title else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    Path(path).write_bytes(bytes(out))
    return Path(path)


KESTREL_PAGES = [
    ["Kestrel Island: a visitor's guide",
     "Kestrel Island lies in the Grey Sound, 35 minutes by ferry from Velmora.",
     "The island is 4.2 kilometres long and has no cars except the warden's tractor.",
     "It is named after the kestrels that nest on its western cliffs."],
    ["Birds",
     "About 90 species of birds have been recorded on Kestrel Island.",
     "Puffins nest on the northern slopes from April to early August.",
     "The bird hide at Gannet Cove is open to visitors from dawn to dusk.",
     "Please keep at least 50 metres away from the puffin burrows."],
    ["Walking trails",
     "The Cliff Trail is a 6 kilometre loop that starts at the ferry pier.",
     "The Marsh Trail is 2 kilometres long and suitable for wheelchairs.",
     "Camping on the island is not allowed; the last ferry back leaves at 19:15 in summer.",
     "The island warden, Petra Lind, can be reached at the hut beside the pier."],
]

if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "examples/notebook/velmora/kestrel-island.pdf"
    write_pdf(target, KESTREL_PAGES, title="Kestrel Island: a visitor's guide")
    print(f"wrote {target}")
