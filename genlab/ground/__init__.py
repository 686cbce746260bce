"""Grounding: answers that rest on the user's own sources, with citations.

    sources.py    read PDF, Markdown, text and HTML into text with pages; chunk with offsets
    embed.py      the dense embedder (all-MiniLM-L6-v2 from its wheel, offline)
    notebook.py   a notebook: one SQLite file of sources, chunks and vectors
    retrieval.py  BM25, dense and hybrid (reciprocal-rank fusion) search over a notebook
    backends.py   the search-backend seam (`search(query, k)`), the notebook as the default
    answer.py     grounded answers with Gemini-shaped grounding metadata, or an abstention
    check.py      groundedness: claims checked against their cited chunks
    outputs.py    briefing doc, FAQ and the two-host audio-overview script
    audio.py      speaking a script offline with two espeak-ng voices into a WAV file
    evaluation.py recall@k, MRR and nDCG@10 per retriever, and end-to-end groundedness
"""
