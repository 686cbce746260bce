"""Bring text to life: a document, a folder or a notebook turned into a narrated video
(a book trailer, a video overview). See `genlab.trailer.make` for the path it takes."""

from genlab.trailer.make import TrailerConfig, TrailerResult, load_sources, make_trailer

__all__ = ["TrailerConfig", "TrailerResult", "load_sources", "make_trailer"]
