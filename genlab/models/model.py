"""`Model`: the one way genlab calls a model, whatever the backend.

    Model.execute(request)
      → check the request against what the backend can do (refuse, never drop)
      → response cache (opt-in; only for greedy or seeded requests)
      → budget check → concurrency slot
      → backend.execute (n calls when the backend has no ``n``; enum mode as a
        JSON schema when it has no enum mode, unwrapped back to the label)
      → usage, cost → one row in the store → budget → cache
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any, Iterator

from genlab.errors import ConfigError, GenlabError, ModelError, StoreError
from genlab.io import validation_problems
from genlab.models.backend import ASSUMED_MAX_TOKENS, Backend, redact
from genlab.models.cost import Budget, cost_usd
from genlab.models.request import EnumFormat, Request
from genlab.models.response import Choice, Chunk, Response, Usage
from genlab.store import CallRecord, Store

# Tokens a template may add to any prompt: SmolLM2's inserts a 20-token system prompt when
# the messages have none, so a two-byte "hi" is 31 tokens.
TEMPLATE_TOKENS = 64

log = logging.getLogger("genlab.models")

#: Calls one Model lets run at once (each waits for a slot beyond that).
DEFAULT_CONCURRENCY = 8


class Stream:
    """Chunks as they arrive; ``response`` holds the finished `Response` after iteration."""

    def __init__(self, chunks: Iterator[Chunk], holder: dict):
        self._chunks = chunks
        self._holder = holder

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks

    def close(self) -> None:
        self._chunks.close()

    @property
    def response(self) -> Response:
        if "response" not in self._holder:
            raise RuntimeError("read the stream to the end before asking for its response")
        return self._holder["response"]


class Model:
    """A backend plus everything every call needs: cache, cost, budget, logging, limits."""

    def __init__(self, spec: str, backend: Backend, *, store: Store | None = None,
                 budget: Budget | None = None, max_concurrency: int = DEFAULT_CONCURRENCY,
                 source: str | None = None):
        self.spec = spec
        #: The spec with any credentials in a URL hidden: what logs, errors and replies show.
        self.name = redact(spec)
        self.backend = backend
        self.store = store if store is not None else Store()
        self.budget = budget
        self.source = source
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def __repr__(self) -> str:
        return f"Model({self.name!r})"

    # -- convenience -------------------------------------------------------------

    def chat(self, messages: str | list[dict[str, Any]], *, system: str | None = None,
             stream: bool = False, cache: bool = False, **options: Any) -> Response | Stream:
        """Send a chat; ``messages`` may be one user string. Options are `Request` fields."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        return self.execute(build_request(messages=messages, **options), stream=stream, cache=cache)

    def complete(self, prompt: str, *, stream: bool = False, cache: bool = False,
                 **options: Any) -> Response | Stream:
        """Continue a plain-text prompt (no chat template)."""
        return self.execute(build_request(prompt=prompt, **options), stream=stream, cache=cache)

    # -- the call ----------------------------------------------------------------

    def execute(self, request: Request, *, stream: bool = False, cache: bool = False) -> Response | Stream:
        """Run one request; with ``stream`` return a `Stream` of chunks."""
        self._check_capabilities(request)
        decoding = self.backend.decoding_tag(request)
        key = request.key(f"{self.spec}|{self.backend.model_id}|{self.backend.weights_tag()}"
                          + (f"|{decoding}" if decoding else ""))
        use_cache = cache and request.deterministic
        if use_cache and (hit := self.store.cached_response(key)) is not None:
            response = Response.from_dict(hit)
            response.cache_hit, response.latency_s, response.cost_usd = True, 0.0, 0.0
            self._log(key, response, error=None)
            return _replay(response) if stream else response
        if self.budget is not None:
            self.budget.check(self.backend.model_id, self.backend.free)
        holder: dict = {}
        chunks = self._run(request, key, stream, use_cache, holder)
        if stream:
            return Stream(chunks, holder)
        for _ in chunks:
            pass
        return holder["response"]

    def _check_capabilities(self, request: Request) -> None:
        backend = self.backend
        if request.top_k is not None and not backend.supports_top_k:
            raise ConfigError(f"{self.name} does not take top_k; drop it or use top_p", param="top_k")
        if request.grammar is not None and not backend.supports_grammar:
            raise ConfigError(f"{self.name} does not take a grammar (llama.cpp backends do: local, local:FILE.gguf, "
                              "a llama.cpp server or genlab serve by URL); drop it", param="grammar")
        enum_mode = isinstance(request.response_format, EnumFormat) and backend.supports_enum
        if request.response_format is not None and not backend.supports_structured_output and not enum_mode:
            also = " (enum mode it does)" if backend.supports_enum else ""
            raise ConfigError(f"{self.name} does not do structured output{also}; use a local: GGUF or an endpoint",
                              param="response_format")
        if request.logprobs and not backend.supports_logprobs:
            raise ConfigError(f"{self.name} does not return logprobs", param="logprobs")
        for field, taken in (("presence_penalty", backend.supports_penalties),
                             ("frequency_penalty", backend.supports_penalties),
                             ("logit_bias", backend.supports_logit_bias)):
            if getattr(request, field) is not None and not taken:
                raise ConfigError(f"{self.name} does not take {field}; drop it", param=field)
        media = sorted({kind for message in request.messages or () for kind in message.media_parts()})
        if media and not backend.supports_media:
            raise ConfigError(f"{self.name} reads text only, not {', '.join(media)} content parts; send text, "
                              "or use a model that takes them (e.g. gemini:gemini-2.5-flash)", param="messages")
        if not request.is_chat and not backend.supports_completions:
            raise ConfigError(f"{self.name} has no plain completions endpoint; send chat messages instead",
                              param="prompt")

    def _backend_request(self, request: Request) -> Request:
        fmt = request.response_format
        if isinstance(fmt, EnumFormat) and not self.backend.supports_enum:
            request = request.model_copy(update={"response_format": fmt.as_json_schema()})
        return request

    def _backend_chunks(self, request: Request, stream: bool) -> Iterator[Chunk | Usage]:
        request = self._backend_request(request)
        if request.n == 1 or self.backend.supports_n:
            yield from self.backend.execute(request, stream)
            return
        # Several choices from a backend without n: one call each, seeds seed, seed+1…
        # so that a seeded request stays reproducible yet its choices differ.
        usage = Usage()
        for i in range(request.n):
            seed = None if request.seed is None else request.seed + i
            one = request.model_copy(update={"n": 1, "seed": seed})
            for item in self.backend.execute(one, stream):
                if isinstance(item, Usage):
                    usage = usage + item
                else:
                    item.index = i
                    yield item
        yield usage

    def _run(self, request: Request, key: str, stream: bool, use_cache: bool,
             holder: dict) -> Iterator[Chunk]:
        texts: dict[int, list[str]] = {i: [] for i in range(request.n)}
        logprobs: dict[int, list[dict]] = {}
        finish: dict[int, str | None] = {}
        usage = Usage()
        enum = request.response_format if isinstance(request.response_format, EnumFormat) else None
        unwrap = enum is not None and not self.backend.supports_enum
        error: str | None = "cancelled"   # until the call ends; a closed stream leaves it so
        made = 0                          # chunks received: the tokens made, if the call is cancelled
        held = self.budget.reserve(self.backend.model_id, self.backend.free, self._worst_case(request)) \
            if self.budget is not None else None
        started = time.perf_counter()
        with self._slots:
            try:
                for item in self._backend_chunks(request, stream):
                    if isinstance(item, Usage):
                        usage = item
                        continue
                    made += bool(item.text)
                    texts.setdefault(item.index, []).append(item.text)
                    if item.logprobs:
                        logprobs.setdefault(item.index, []).extend(item.logprobs)
                    if item.finish_reason:
                        finish[item.index] = item.finish_reason
                    if unwrap:  # JSON pieces are not the answer: the label comes at the end
                        if item.finish_reason:
                            yield Chunk(item.index, _unwrap_label("".join(texts[item.index]), enum),
                                        item.finish_reason)
                    else:
                        yield item
                error = None
            except GenlabError as exc:
                error = str(exc)
                raise
            finally:
                latency = time.perf_counter() - started
                if error == "cancelled" and not usage.completion_tokens:
                    usage = Usage(usage.prompt_tokens, usage.cached_tokens, made)  # streamed: one token a chunk
                choices = [Choice(i, "".join(parts), finish.get(i), logprobs.get(i))
                           for i, parts in sorted(texts.items())]
                if unwrap and error is None:
                    for choice in choices:
                        choice.text = _unwrap_label(choice.text, enum)
                response = Response(
                    id=f"genlab-{uuid.uuid4().hex[:24]}", model=self.name, choices=choices, usage=usage,
                    cost_usd=cost_usd(self.backend.model_id, usage, self.backend.free), latency_s=latency,
                )
                self._log(key, response, error)
                if held is not None:
                    self.budget.settle(held, usage, response.cost_usd)
        if enum is not None:
            for choice in response.choices:
                if choice.text not in enum.enum:
                    raise ModelError(f"{self.name} answered {choice.text!r}, which is not one of the enum "
                                     f"labels {enum.enum}")
        if use_cache:
            try:
                self.store.cache_response(key, self.name, response.to_dict())
            except StoreError as exc:
                log.warning("this reply was not cached: %s", exc)
        holder["response"] = response

    def _worst_case(self, request: Request) -> Usage:
        """The most a call can use: every prompt byte a token (a token is at least one byte)
        plus what a chat template adds, counted once per choice, and every choice at its token
        limit. Once per choice because a backend without native ``n`` (llama.cpp among them)
        reads, and reports, the prompt for each choice."""
        if request.is_chat:
            prompt = sum(len(json.dumps(m.content, ensure_ascii=False).encode()) + 8 for m in request.messages)
        else:
            prompt = len(request.prompt.encode())
        prompt += TEMPLATE_TOKENS
        limit = request.max_tokens or self.backend.default_max_tokens or ASSUMED_MAX_TOKENS
        return Usage(request.n * prompt, 0, request.n * limit)

    def _log(self, key: str, response: Response, error: str | None) -> None:
        u = response.usage
        try:
            self.store.log_call(CallRecord(
                model=self.name, request_hash=key, prompt_tokens=u.prompt_tokens, cached_tokens=u.cached_tokens,
                completion_tokens=u.completion_tokens, latency_s=response.latency_s, cost_usd=response.cost_usd,
                cache_hit=response.cache_hit, source=self.source, error=redact(error) if error else None,
            ))
        except StoreError as exc:  # the reply is worth more than its log row: say so, go on
            log.warning("this call was not logged: %s", exc)


def build_request(**fields: Any) -> Request:
    """Validate request fields, turning pydantic's report into one ConfigError line."""
    from pydantic import ValidationError

    try:
        return Request(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigError("invalid request: " + "; ".join(f"{k}: {m}" if k else m for k, m in problems)) from None


def _unwrap_label(text: str, enum: EnumFormat) -> str:
    try:
        label = json.loads(text)["label"]
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"expected {{\"label\": ...}} with one of {enum.enum}, got {text[:200]!r}") from None
    return label


def _replay(response: Response) -> Stream:
    def chunks() -> Iterator[Chunk]:
        for choice in response.choices:
            yield Chunk(choice.index, choice.text, choice.finish_reason)
    return Stream(chunks(), {"response": response})
