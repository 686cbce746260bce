"""genlab: modern LLM engineering techniques on any model, offline by default."""

__version__ = "0.1.0"
