"""The one way to reach a model: `get_model(spec)` returns a `Model`.

Model specs:

    local                       the embedded SmolLM2-135M-Instruct (default)
    local:/path/to/model.gguf   any GGUF file, run in-process by llama.cpp
    hf:/path/to/folder          a Hugging Face model folder (e.g. from genlab tune), on transformers
    openai:MODEL                OpenAI (OPENAI_API_KEY)
    gemini:MODEL                Gemini's OpenAI-compatible endpoint (GEMINI_API_KEY)
    ollama:MODEL                a local Ollama (OLLAMA_HOST, default localhost:11434)
    http://HOST:PORT/v1#MODEL   any OpenAI-compatible base URL (key: GENLAB_API_KEY)
"""

from __future__ import annotations

from genlab.errors import ConfigError
from genlab.models.backend import Backend
from genlab.models.cost import Budget, cost_usd, price_table
from genlab.models.model import Model, Stream, build_request
from genlab.models.request import EnumFormat, JsonSchemaFormat, Message, Request
from genlab.models.response import Choice, Chunk, Response, Usage
from genlab.store import Store

DEFAULT_MODEL = "local"

__all__ = [
    "Backend", "Budget", "Choice", "Chunk", "EnumFormat", "JsonSchemaFormat", "Message", "Model",
    "Request", "Response", "Stream", "Usage", "build_request", "cost_usd", "get_backend", "get_model",
    "price_table", "DEFAULT_MODEL",
]


def get_backend(spec: str) -> Backend:
    """Parse a model spec into its backend (no network call is made)."""
    from genlab.models.local import LocalBackend
    from genlab.models.openai_compat import PROVIDERS, RAW, OpenAICompatBackend

    spec = spec.strip()
    if spec == "local":
        return LocalBackend()
    if spec.startswith("local:"):
        return LocalBackend(spec.removeprefix("local:"))
    if spec.startswith("hf:"):
        from genlab.models.hf import HFBackend

        return HFBackend(spec.removeprefix("hf:"))
    if spec.startswith(("http://", "https://")):
        base_url, _, name = spec.partition("#")
        return OpenAICompatBackend(RAW, name, base_url=base_url)
    prefix, sep, name = spec.partition(":")
    if sep and prefix in PROVIDERS:
        return OpenAICompatBackend(PROVIDERS[prefix], name)
    raise ConfigError(
        f"unknown model spec '{spec}'; use local, local:/path.gguf, hf:DIR, openai:MODEL, gemini:MODEL, "
        "ollama:MODEL or http://HOST:PORT/v1#MODEL (see: genlab models)"
    )


def get_model(spec: str = DEFAULT_MODEL, *, store: Store | None = None, budget: Budget | None = None,
              max_concurrency: int | None = None, source: str | None = None) -> Model:
    """Return a `Model` for a spec, logging to ``store`` (default: genlab's store)."""
    kwargs = {"max_concurrency": max_concurrency} if max_concurrency else {}
    return Model(spec, get_backend(spec), store=store, budget=budget, source=source, **kwargs)
