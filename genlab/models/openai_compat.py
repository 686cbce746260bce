"""The OpenAI-compatible backend: any ``/v1`` endpoint through the official `openai` SDK.

Retries are the SDK's own: exponential backoff with jitter on connection errors,
timeouts, 408/409/429 and 5xx, honouring ``Retry-After``; genlab only sets how many.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import openai

from genlab.errors import ConfigError, ModelError, ModelUnreachable, RequestRejected
from genlab.machine import env_number
from genlab.models.backend import Backend, redact
from genlab.models.request import Request
from genlab.models.response import Chunk, Usage, token_logprobs

#: Retries after the first try (GENLAB_MAX_RETRIES overrides).
DEFAULT_MAX_RETRIES = 4
#: Seconds before one HTTP request is abandoned (GENLAB_TIMEOUT overrides).
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Provider:
    """How to reach one family of OpenAI-compatible endpoints."""

    name: str
    base_url: str
    key_envs: tuple[str, ...]        # first one set wins; empty: no key needed
    key_hint: str = ""               # where to get a key, for the missing-key error
    top_k_extra: bool = False        # the server reads top_k from the request body
    grammar_extra: bool = False      # the server reads a GBNF ``grammar`` from the body (llama.cpp's does)
    supports_n: bool = True
    supports_completions: bool = True


PROVIDERS: dict[str, Provider] = {
    "openai": Provider("openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",),
                       "create one at platform.openai.com/api-keys"),
    # Gemini's OpenAI-compatible endpoint; top_k is not part of it, and it has no
    # legacy completions endpoint.
    "gemini": Provider("gemini", "https://generativelanguage.googleapis.com/v1beta/openai/",
                       ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "create one at aistudio.google.com/apikey",
                       supports_completions=False),
    # Ollama reads top_k from the body; it ignores n, so genlab calls n times.
    "ollama": Provider("ollama", os.environ.get("OLLAMA_HOST", "http://localhost:11434").rstrip("/") + "/v1",
                       (), top_k_extra=True, supports_n=False),
}

#: A raw base URL (vLLM, llama.cpp, genlab serve…) reads top_k and n; its key is
#: GENLAB_API_KEY, never another provider's key sent to an arbitrary host. A grammar is
#: sent as llama.cpp's server and genlab serve read it; a server that ignores it samples freely.
RAW = Provider("url", "", ("GENLAB_API_KEY",), top_k_extra=True, grammar_extra=True)


def from_spec(spec: str) -> "OpenAICompatBackend":
    """The backend for ``provider:MODEL`` (openai, gemini, ollama) or ``http(s)://HOST/v1#MODEL``."""
    if spec.startswith(("http://", "https://")):
        base_url, _, name = spec.partition("#")
        return OpenAICompatBackend(RAW, name, base_url=base_url)
    prefix, _, name = spec.partition(":")
    return OpenAICompatBackend(PROVIDERS[prefix], name)


def _logprobs(choice: Any, top: int | None) -> list[dict] | None:
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    return token_logprobs([t.model_dump() for t in content] if content else None, top)


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    details = getattr(raw, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", None) or 0) if details else 0
    return Usage(raw.prompt_tokens or 0, cached, raw.completion_tokens or 0)


class OpenAICompatBackend(Backend):
    supports_enum = False  # the wrapper sends enum mode as a JSON schema with an enum
    supports_media = True

    def __init__(self, provider: Provider, model_name: str, base_url: str | None = None,
                 api_key: str | None = None):
        if not model_name:
            raise ConfigError(f"no model name in the spec; write it as {provider.name}:MODEL"
                              if provider is not RAW else
                              "no model name in the URL spec; write it as http://HOST/v1#MODEL")
        self.provider = provider
        self.model_id = model_name
        self.base_url = base_url or provider.base_url
        self.supports_top_k = provider.top_k_extra
        self.supports_grammar = provider.grammar_extra
        self.supports_n = provider.supports_n
        self.supports_completions = provider.supports_completions
        key = api_key or next((os.environ[e] for e in provider.key_envs if os.environ.get(e)), None)
        if key is None and provider.key_envs and provider is not RAW:
            raise ConfigError(f"{provider.key_envs[0]} is not set; {provider.key_hint} and run: "
                              f"export {provider.key_envs[0]}=...")
        self.client = openai.OpenAI(
            api_key=key or "none", base_url=self.base_url,
            max_retries=int(env_number("GENLAB_MAX_RETRIES", DEFAULT_MAX_RETRIES, integer=True, unit="retries")),
            timeout=env_number("GENLAB_TIMEOUT", DEFAULT_TIMEOUT, minimum=0.001, unit="seconds"),
        )

    def describe(self) -> str:
        return f"{self.model_id} at {redact(self.base_url)}"

    def _kwargs(self, request: Request, stream: bool) -> dict[str, Any]:
        kwargs = request.payload()
        kwargs.pop("messages", None)
        kwargs.pop("prompt", None)
        # Fields outside OpenAI's API travel in the body, where the servers that take them look.
        extra = {key: kwargs.pop(key) for key in ("top_k", "grammar") if key in kwargs}
        if self.provider is RAW and request.seed is not None:
            # llama.cpp's server reuses cached prompt prefixes, which changes the last bits of the
            # logits: a seeded call asks it not to, so that it repeats (other servers ignore the field).
            extra["cache_prompt"] = False
        if extra:
            kwargs["extra_body"] = extra
        if kwargs.get("n") == 1:
            del kwargs["n"]
        kwargs["model"] = self.model_id
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    def execute(self, request: Request, stream: bool) -> Iterator[Chunk | Usage]:
        kwargs = self._kwargs(request, stream)
        top = request.top_logprobs
        try:
            if request.is_chat:
                messages = [m.model_dump(exclude_none=True) for m in request.messages]
                out = self.client.chat.completions.create(messages=messages, **kwargs)
            else:
                out = self.client.completions.create(prompt=request.prompt, **kwargs)
            if not stream:
                for choice in out.choices:
                    text = choice.message.content if request.is_chat else choice.text
                    yield Chunk(choice.index, text or "", choice.finish_reason, _logprobs(choice, top))
                yield _usage(out.usage)
                return
            usage = Usage()
            for event in out:
                for choice in event.choices:
                    text = (choice.delta.content if request.is_chat else choice.text) or ""
                    if text or choice.finish_reason:
                        yield Chunk(choice.index, text, choice.finish_reason, _logprobs(choice, top))
                if event.usage:
                    usage = _usage(event.usage)
            yield usage
        except openai.APIError as exc:
            raise self._translate(exc) from exc

    def reachable(self) -> None:
        """Fail now where the server cannot be reached or refuses the key, not at the first
        call after long work; a server without /models is left to answer the calls."""
        try:
            self.client.models.list()
        except (openai.APIConnectionError, openai.AuthenticationError) as exc:
            raise self._translate(exc) from exc
        except openai.APIError:
            pass

    def _translate(self, exc: openai.APIError) -> Exception:
        where = redact(self.base_url)
        if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
            return ModelUnreachable(f"cannot reach {where} ({exc}); check the URL and that the server is running")
        status = getattr(exc, "status_code", None) or 500
        message = _error_message(exc)
        if status == 401:
            hint = f"check {self.provider.key_envs[0]}" if self.provider.key_envs else "check the API key"
            return RequestRejected(f"{where} rejected the API key (401: {message}); {hint}", status=401)
        if status == 404:
            return RequestRejected(f"{where} has no model '{self.model_id}' (404: {message}); "
                                   "check the model name in the spec", status=404)
        if status == 429:
            return RequestRejected(f"{where} is rate-limiting (429: {message}) and retries ran out; "
                                   "wait, lower the concurrency, or raise GENLAB_MAX_RETRIES", status=429)
        if status < 500:
            return RequestRejected(f"{where} rejected the request ({status}: {message})", status=status,
                                   param=getattr(exc, "param", None))
        return ModelError(f"{where} failed with HTTP {status} after retries: {message}")


def _error_message(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return getattr(exc, "message", None) or str(exc)
