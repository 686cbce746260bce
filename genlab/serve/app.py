"""An OpenAI-compatible HTTP server over any genlab model.

Any OpenAI client works against it by changing its base URL to ``http://HOST:PORT/v1``.
Besides chat and completions it answers ``/v1/images/generations`` and ``/v1/audio/speech``
offline (`genlab.serve.media`).
Every call goes through `genlab.models.Model`, so the server is also a gateway
that logs tokens and cost to genlab's store and enforces a budget.

    request → Guard (Host, key, JSON content type, body size) → limits (400 naming one)
      → the model's Admission (bounded queue, wait limit; 429 + Retry-After when full)
      → with tools: which function, then its arguments, as structured output (`genlab.serve.tools`);
        a tool call is answered there, a reply in words goes on
      → a worker thread of the server's own pool streams the call, chunk by chunk,
        to the event loop; a client that goes away stops it within a token
      → JSON, or server-sent events ending in [DONE] (an error mid-stream is an event)

The event loop never blocks on a model, so ``/health`` always answers.
Errors use OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``
with the matching HTTP status, so the `openai` SDK raises its typed exceptions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, AsyncIterator, Callable, Literal

from fastapi import FastAPI, Request as HttpRequest
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from genlab.errors import ApiError, GenlabError
from genlab.io import unicode_problem
from genlab.models import Budget, Model, Request, Response, get_model
from genlab.models.backend import redact
from genlab.models.response import Usage
from genlab.serve.guard import (Admission, BodyTooLarge, Guard, ServeLimits, check_body, envelope,
                                invalid_request)
from genlab.serve.media import add_media_routes
from genlab.serve.tools import ToolCall, call_or_reply, take_tools
from genlab.store import Store

log = logging.getLogger("genlab.serve")

#: OpenAI request fields genlab accepts but that do not change the output.
#: Read elsewhere, or hints genlab decides itself: llama.cpp's ``cache_prompt`` (genlab's embedded
#: backend turns prompt-prefix reuse off for seeded calls, the only ones it would change).
IGNORED_FIELDS = {"user", "metadata", "store", "stream", "stream_options", "model", "cache_prompt"}
#: Fields whose value asks for what genlab does anyway: taken, and any other value refused
#: (a reply calls at most one function, so parallel_tool_calls allows what is done).
AS_DONE = {"parallel_tool_calls": (True, False), "service_tier": ("auto", "default"), "modalities": (["text"],)}


def _json_error(exc: GenlabError) -> JSONResponse:
    return JSONResponse(status_code=exc.http_status, content=envelope(exc), headers=getattr(exc, "headers", None))


def _from_genlab(exc: GenlabError) -> ApiError:
    """A genlab error for a client: a user's mistake is told as it is; a failure on the
    model's side (5xx) is told without genlab's internals, which go to the log."""
    if isinstance(exc, ApiError):
        return exc  # written for the client already
    if exc.http_status < 500:
        return ApiError(exc.http_status, redact(str(exc)), exc.error_type, exc.param, exc.code)
    incident = uuid.uuid4().hex[:12]
    log.error("model failure %s: %s", incident, exc)
    what = "cannot be reached" if exc.http_status == 503 else "failed to answer"
    return ApiError(exc.http_status, f"the model {what}; the server's log has the details (incident {incident})",
                    exc.error_type, code=exc.code)


def _unexpected(exc: BaseException) -> ApiError:
    incident = uuid.uuid4().hex[:12]
    log.error("unexpected error %s", incident, exc_info=exc)
    return ApiError(500, f"internal error; the server's log has the details (incident {incident})", "server_error")


class Served:
    """One model the server answers for, with its own admission queue."""

    def __init__(self, model: Model, limits: ServeLimits):
        self.model = model
        self.admission = Admission(limits.slots, limits.queue, limits.queue_timeout_s)


class ModelPool:
    """The models a server answers for, by name (the spec, credentials hidden)."""

    def __init__(self, specs: list[str], store: Store, budget: Budget | None, limits: ServeLimits):
        self.served: dict[str, Served] = {}
        for spec in dict.fromkeys(specs):
            # A bad spec or a missing key fails now, at start-up, not on a first request.
            model = get_model(spec, store=store, budget=budget, source="serve")
            self.served[model.name] = Served(model, limits)
        self.names = list(self.served)

    def get(self, name: Any) -> Served:
        if not name:
            raise ApiError(400, "you must provide a model parameter", param="model", code="missing_required_parameter")
        if not isinstance(name, str) or redact(name) not in self.served:
            raise ApiError(404, f"the model '{redact(str(name))}' does not exist here; served models: "
                           f"{', '.join(self.names)}", param="model", code="model_not_found")
        return self.served[redact(name)]


def create_app(specs: list[str], *, api_key: str | None = None, store: Store | None = None,
               budget: Budget | None = None, host: str = "127.0.0.1",
               limits: ServeLimits | None = None, allow_hosts: list[str] | None = None) -> FastAPI:
    """Return the ASGI app serving ``specs`` (validated now, loaded on first use)."""
    store = store or Store()
    limits = limits or ServeLimits()
    pool = ModelPool(specs, store, budget, limits)
    # Model work runs here, never on the event loop or on the shared pool of sync routes.
    workers = ThreadPoolExecutor(len(pool.served) * limits.slots, thread_name_prefix="genlab-serve")
    app = FastAPI(title="genlab", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool = pool
    app.add_middleware(Guard, host=host, api_key=api_key, limits=limits, allow_hosts=allow_hosts)

    @app.exception_handler(GenlabError)
    async def _genlab_error(_: HttpRequest, exc: GenlabError) -> JSONResponse:
        return _json_error(_from_genlab(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: HttpRequest, exc: StarletteHTTPException) -> JSONResponse:
        return _json_error(ApiError(exc.status_code, str(exc.detail), code=str(exc.status_code)))

    @app.exception_handler(Exception)
    async def _bug(_: HttpRequest, exc: Exception) -> JSONResponse:
        return _json_error(_unexpected(exc))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok",
                "generating": sum(s.admission.active for s in pool.served.values()),
                "waiting": sum(s.admission.waiting for s in pool.served.values())}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list",
                "data": [{"id": s, "object": "model", "created": 0, "owned_by": "genlab"} for s in pool.names]}

    @app.get("/v1/models/{name:path}")
    async def get_one(name: str) -> dict:
        pool.get(name)
        return {"id": redact(name), "object": "model", "created": 0, "owned_by": "genlab"}

    @app.post("/v1/chat/completions")
    async def chat_completions(http: HttpRequest) -> Any:
        return await _handle(pool, workers, limits, http, chat=True, store=store)

    @app.post("/v1/completions")
    async def completions(http: HttpRequest) -> Any:
        return await _handle(pool, workers, limits, http, chat=False)

    @app.post("/v1/feedback")
    async def feedback(http: HttpRequest) -> dict:
        body = await _read_json(http, limits.body_timeout_s)
        return await asyncio.get_running_loop().run_in_executor(workers, _feedback, store, body)

    # Pictures (designed cards) and speech (espeak-ng), for genlab trailer and any OpenAI client.
    add_media_routes(app, workers, store, budget, limits, partial(_read_json, timeout_s=limits.body_timeout_s))
    return app


class FeedbackBody(BaseModel):
    """POST /v1/feedback: a rating of one reply, or a preference between two."""

    model_config = ConfigDict(extra="forbid")
    response_id: str | None = None          # a chat completion's id
    choice_index: int = Field(0, ge=0)
    rating: Literal["up", "down"] | None = None
    better_response: str | None = Field(None, min_length=1)
    chosen_id: str | None = None
    chosen_index: int = Field(0, ge=0)
    rejected_id: str | None = None
    rejected_index: int = Field(0, ge=0)


def _feedback(store: Store, body: dict) -> dict:
    try:
        fb = FeedbackBody(**body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    rating = {"up": 1, "down": -1, None: None}[fb.rating]
    if fb.chosen_id or fb.rejected_id:
        if not (fb.chosen_id and fb.rejected_id) or fb.response_id or fb.rating or fb.better_response:
            raise ApiError(400, "a preference needs chosen_id and rejected_id, and nothing of a rating")
        args = dict(response_id=fb.chosen_id, choice_index=fb.chosen_index, rejected_id=fb.rejected_id,
                    rejected_index=fb.rejected_index)
    elif fb.response_id and (rating is not None or fb.better_response):
        args = dict(response_id=fb.response_id, choice_index=fb.choice_index,
                    rating=rating if rating is not None else -1, better=fb.better_response)
    else:
        raise ApiError(400, "send {response_id, rating: up|down, better_response?} or {chosen_id, rejected_id}")
    # Its errors reach the client through the app's GenlabError handler: an unknown reply is
    # UnknownResponse's 404, any other mistake a 400.
    feedback_id = store.add_feedback(**args, source="serve")
    return {"id": feedback_id, "object": "feedback", "stored": True}


async def _read_json(http: HttpRequest, timeout_s: float) -> dict:
    # uvicorn waits for a body as long as its sender takes: one that sends less than its
    # Content-Length, or trickles, would hold its connection for ever.
    try:
        raw = await asyncio.wait_for(http.body(), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout_s:g} s; send it whole, "
                       "with a Content-Length that matches it", code="request_timeout") from None
    except BodyTooLarge:
        raise ApiError(413, "the request body is too large; send less", code="request_too_large") from None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "could not parse the request body as JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if problem := unicode_problem(body):     # for every route: pictures, speech and vectors too
        raise ApiError(400, problem)
    return body


def _parse(body: dict, chat: bool) -> Request:
    fields = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and v is not None
              and not (k in AS_DONE and v in AS_DONE[k])}
    if "max_completion_tokens" in fields:
        fields["max_tokens"] = fields.pop("max_completion_tokens")
    if chat and body.get("messages") is None:
        raise ApiError(400, "missing required parameter: 'messages'", param="messages",
                       code="missing_required_parameter")
    if not chat and body.get("prompt") is None:
        raise ApiError(400, "missing required parameter: 'prompt'", param="prompt",
                       code="missing_required_parameter")
    if not chat and not isinstance(fields.get("prompt"), str):
        raise ApiError(400, "'prompt' must be one string", param="prompt")
    if not chat and fields.get("logprobs") not in (None, False):   # the legacy API's count of alternatives
        raise ApiError(400, "logprobs are served on /v1/chat/completions only (logprobs: true, top_logprobs: N)",
                       param="logprobs", code="unsupported_parameter")
    known = set(Request.model_fields)
    unknown = sorted(set(fields) - known - ({"prompt"} if chat else {"messages"}))
    if unknown:
        # Never drop a parameter silently: the caller would believe it took effect.
        raise ApiError(400, f"unsupported parameter: '{unknown[0]}' (genlab serves: {', '.join(sorted(known))})",
                       param=unknown[0], code="unsupported_parameter")
    try:
        return Request(**fields)
    except ValidationError as exc:
        raise invalid_request(exc) from None


_END = object()


async def _handle(pool: ModelPool, workers: ThreadPoolExecutor, limits: ServeLimits, http: HttpRequest,
                  chat: bool, store: Store | None = None) -> Any:
    body = await _read_json(http, limits.body_timeout_s)
    served = pool.get(body.get("model"))
    check_body(body, limits)
    body, tools = take_tools(body) if chat else (body, None)
    request = _parse(body, chat)
    name = served.model.name
    response_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    loop = asyncio.get_running_loop()
    items: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    def keep(response: Response) -> None:
        # Chat replies are kept with their prompt so that POST /v1/feedback can rate them.
        if chat and store is not None:
            store.record_response(response_id, name, body["messages"], response.texts, source="serve")

    await served.admission.acquire()
    choosing = Usage()   # what deciding between a function and a reply in words cost
    if tools is not None and tools.candidates():
        # Short calls (on llama.cpp one per function name, then the arguments'): not watched for
        # a client that leaves, as generation is (a reply in words that follows sees it at once).
        try:
            made = await loop.run_in_executor(workers, call_or_reply, served.model, request, tools)
        except BaseException:
            served.admission.release()
            raise
        if isinstance(made, ToolCall):
            served.admission.release()
            if body.get("stream"):
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(_tool_call_sse(made, name, response_id, include),
                                         media_type="text/event-stream")
            return _tool_call_json(made, name, response_id)
        choosing = made
    job = loop.run_in_executor(workers, _generate, served.model, request, cancel, keep,
                               lambda item: loop.call_soon_threadsafe(items.put_nowait, item))
    job.add_done_callback(lambda _: served.admission.release())  # the slot is free when generation ends
    if not body.get("stream"):
        try:
            response = await _collect(items, http, cancel)
            response.usage += choosing
            return (_chat_json if chat else _completion_json)(response, name, response_id)
        finally:
            cancel.set()
    # Wait for the first chunk, so that an early failure is an HTTP error, not a broken stream.
    first = await items.get()
    if isinstance(first, BaseException):
        cancel.set()
        raise first
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    events = _sse(first, items, name, response_id, chat, request.n, include_usage, choosing)
    return _CancellingStream(events, cancel.set, media_type="text/event-stream")


def _generate(model: Model, request: Request, cancel: threading.Event, keep: Callable,
              emit: Callable[[Any], None]) -> None:
    """On a worker thread: run one call as a stream, handing each chunk to the event loop,
    then the finished `Response`, then `_END`. Stops within a token once ``cancel`` is set:
    closing the stream cancels the generation and logs the call as cancelled."""
    stream = None
    try:
        stream = model.execute(request, stream=True)
        for chunk in stream:
            if cancel.is_set():
                return
            emit(chunk)
        try:
            keep(stream.response)
        except Exception as exc:  # noqa: BLE001 - the reply matters more than its feedback row
            log.warning("could not keep %s for feedback: %s", stream.response.id, exc)
        emit(stream.response)
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the client's side
        emit(exc)
    finally:
        if stream is not None:
            stream.close()
        emit(_END)


async def _collect(items: asyncio.Queue, http: HttpRequest, cancel: threading.Event) -> Response:
    """Wait for a call's response, watching for the client to go away meanwhile."""

    async def client_gone() -> None:
        # The body has been read, so the next message is the disconnect (if it comes).
        while (await http.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_gone())
    try:
        while True:
            getter = asyncio.ensure_future(items.get())
            done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                cancel.set()
                raise ApiError(499, "client closed the request")
            item = getter.result()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Response):
                return item
    finally:
        watcher.cancel()


class _CancellingStream(StreamingResponse):
    """A stream that stops its generation however it ends: finished, failed, or the client gone."""

    def __init__(self, content, on_close: Callable[[], None], **kwargs):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _usage_json(u: Usage) -> dict:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens, "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def _head(kind: str, model: str, response_id: str) -> dict:
    """What every reply and every streamed chunk starts with."""
    return {"id": response_id, "object": kind, "created": int(time.time()), "model": model,
            "system_fingerprint": "genlab"}


def _chat_json(response: Response, model: str, response_id: str) -> dict:
    return {
        **_head("chat.completion", model, response_id),
        "choices": [{"index": c.index, "message": {"role": "assistant", "content": c.text, "refusal": None},
                     "logprobs": _logprobs_json(c.logprobs), "finish_reason": c.finish_reason or "stop"}
                    for c in response.choices],
        "usage": _usage_json(response.usage),
    }


def _tool_call_json(call: ToolCall, model: str, response_id: str) -> dict:
    return {
        **_head("chat.completion", model, response_id),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None,
                                             "tool_calls": [call.json()]},
                     "logprobs": None, "finish_reason": call.finish_reason}],
        "usage": _usage_json(call.usage),
    }


async def _tool_call_sse(call: ToolCall, model: str, cid: str, include_usage: bool) -> AsyncIterator[str]:
    """A tool call as OpenAI streams one: its id and name, its arguments, the finish."""
    base = _head("chat.completion.chunk", model, cid)
    head = {**call.json(), "index": 0}
    head["function"] = {"name": call.name, "arguments": ""}
    deltas = [{"role": "assistant", "content": None, "tool_calls": [head]},
              {"tool_calls": [{"index": 0, "function": {"arguments": call.arguments}}]}, {}]
    for i, delta in enumerate(deltas):
        finish = call.finish_reason if i == len(deltas) - 1 else None
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        yield "data: " + json.dumps({**base, "choices": [choice]}) + "\n\n"
    if include_usage:
        yield "data: " + json.dumps({**base, "choices": [], "usage": _usage_json(call.usage)}) + "\n\n"
    yield "data: [DONE]\n\n"


def _logprobs_json(logprobs: list[dict] | None) -> dict | None:
    if not logprobs:
        return None
    def entry(token: dict) -> dict:
        return {"token": token["token"], "logprob": token["logprob"], "bytes": list(token["token"].encode())}

    return {"content": [{**entry(t), "top_logprobs": [entry(a) for a in t.get("top_logprobs", [])]}
                        for t in logprobs], "refusal": None}


def _completion_json(response: Response, model: str, response_id: str) -> dict:
    return {
        **_head("text_completion", model, response_id),
        "choices": [{"index": c.index, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason or "stop"}
                    for c in response.choices],
        "usage": _usage_json(response.usage),
    }


async def _sse(first, items: asyncio.Queue, model: str, cid: str, chat: bool, n: int,
               include_usage: bool, choosing: Usage) -> AsyncIterator[str]:
    """OpenAI's server-sent events: role first, content deltas, finish, usage, [DONE]."""
    base = _head("chat.completion.chunk" if chat else "text_completion", model, cid)

    def event(choices: list, **extra: Any) -> str:
        return "data: " + json.dumps({**base, "choices": choices, **extra}) + "\n\n"

    def piece(index: int, text: str, finish: str | None, logprobs: list[dict] | None) -> dict:
        if chat:
            return {"index": index, "delta": {"content": text} if text else {}, "logprobs": _logprobs_json(logprobs),
                    "finish_reason": finish}
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}

    if chat:
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None} for i in range(n)])
    item = first
    while item is not _END:
        if isinstance(item, BaseException):
            err = _from_genlab(item) if isinstance(item, GenlabError) else _unexpected(item)
            yield "data: " + json.dumps(envelope(err)) + "\n\n"  # an error mid-stream ends it, then [DONE]
            break
        if isinstance(item, Response):
            if include_usage:
                yield event([], usage=_usage_json(item.usage + choosing))
        else:
            yield event([piece(item.index, item.text, item.finish_reason, item.logprobs)])
        item = await items.get()
    yield "data: [DONE]\n\n"
