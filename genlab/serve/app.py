"""An OpenAI-compatible HTTP server over any genlab model.

Any OpenAI client works against it by changing its base URL to ``http://HOST:PORT/v1``.
Every call goes through `genlab.models.Model`, so the server is also a gateway
that logs tokens and cost to genlab's store and enforces a budget.

Errors use OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``
with the matching HTTP status, so the `openai` SDK raises its typed exceptions.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import uuid
from typing import Any, Iterator, Literal

from fastapi import FastAPI, Request as HttpRequest
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from genlab.errors import GenlabError
from genlab.models import Budget, Model, Request, Response, get_model
from genlab.models.model import Stream
from genlab.store import Store

log = logging.getLogger("genlab.serve")

#: OpenAI request fields genlab accepts but that do not change the output.
IGNORED_FIELDS = {"user", "metadata", "store", "stream", "stream_options", "model"}


class ApiError(Exception):
    """An error to send in OpenAI's envelope."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def response(self) -> JSONResponse:
        return JSONResponse(status_code=self.status, content=_envelope(self.message, self.type, self.param, self.code))


def _envelope(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _from_genlab(exc: GenlabError) -> ApiError:
    return ApiError(exc.http_status, str(exc), exc.error_type, exc.param, exc.code)


class ModelPool:
    """The models a server answers for, created on first use and shared by all requests."""

    def __init__(self, specs: list[str], store: Store, budget: Budget | None):
        self.specs = list(dict.fromkeys(specs))
        self._store, self._budget = store, budget
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None) -> Model:
        if not name:
            raise ApiError(400, "you must provide a model parameter", param="model", code="missing_required_parameter")
        if name not in self.specs:
            raise ApiError(404, f"the model '{name}' does not exist here; served models: {', '.join(self.specs)}",
                           param="model", code="model_not_found")
        with self._lock:
            if name not in self._models:
                self._models[name] = get_model(name, store=self._store, budget=self._budget, source="serve")
            return self._models[name]


def create_app(specs: list[str], *, api_key: str | None = None, store: Store | None = None,
               budget: Budget | None = None) -> FastAPI:
    """Return the ASGI app serving ``specs`` (validated now, loaded on first use)."""
    store = store or Store()
    pool = ModelPool(specs, store, budget)
    for spec in pool.specs:
        pool.get(spec)  # parse every spec now: a bad spec or missing key fails at start-up
    app = FastAPI(title="genlab", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool = pool

    @app.exception_handler(ApiError)
    async def _api_error(_: HttpRequest, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(GenlabError)
    async def _genlab_error(_: HttpRequest, exc: GenlabError) -> JSONResponse:
        return _from_genlab(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: HttpRequest, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail), code=str(exc.status_code)).response()

    @app.exception_handler(Exception)
    async def _bug(_: HttpRequest, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", "server_error").response()

    @app.middleware("http")
    async def _auth(request: HttpRequest, call_next):
        if api_key and request.url.path.startswith("/v1"):
            if request.headers.get("authorization", "") != f"Bearer {api_key}":
                return ApiError(401, "incorrect API key; send it as 'Authorization: Bearer KEY'",
                                code="invalid_api_key").response()
        return await call_next(request)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "models": pool.specs}

    @app.get("/v1/models")
    def list_models() -> dict:
        return {"object": "list",
                "data": [{"id": s, "object": "model", "created": 0, "owned_by": "genlab"} for s in pool.specs]}

    @app.get("/v1/models/{name:path}")
    def get_one(name: str) -> dict:
        pool.get(name)
        return {"id": name, "object": "model", "created": 0, "owned_by": "genlab"}

    @app.post("/v1/chat/completions")
    def chat_completions(body: dict = _json_body()) -> Any:
        return _handle(pool, body, chat=True, store=store)

    @app.post("/v1/completions")
    def completions(body: dict = _json_body()) -> Any:
        return _handle(pool, body, chat=False)

    @app.post("/v1/feedback")
    def feedback(body: dict = _json_body()) -> dict:
        return _feedback(store, body)

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
        raise _invalid(exc) from None
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
    try:
        feedback_id = store.add_feedback(**args, source="serve")
    except GenlabError as exc:
        raise ApiError(404, str(exc), param="response_id", code="response_not_found") from exc
    return {"id": feedback_id, "object": "feedback", "stored": True}


def _json_body():
    from fastapi import Depends

    async def read(request: HttpRequest) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "could not parse the request body as JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body

    return Depends(read)


def _parse(body: dict, chat: bool) -> Request:
    fields = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and v is not None}
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
    known = set(Request.model_fields)
    unknown = sorted(set(fields) - known - ({"prompt"} if chat else {"messages"}))
    if unknown:
        # Never drop a parameter silently: the caller would believe it took effect.
        raise ApiError(400, f"unsupported parameter: '{unknown[0]}' (genlab serves: {', '.join(sorted(known))})",
                       param=unknown[0], code="unsupported_parameter")
    try:
        return Request(**fields)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> ApiError:
    """A 400 naming the first invalid field, from pydantic's error."""
    err = exc.errors()[0]
    param = ".".join(str(p) for p in err["loc"]) or None
    message = err["msg"].removeprefix("Value error, ")
    return ApiError(400, f"invalid '{param}': {message}" if param else message, param=param)


def _handle(pool: ModelPool, body: dict, chat: bool, store: Store | None = None) -> Any:
    model = pool.get(body.get("model"))
    request = _parse(body, chat)

    def keep(response_id: str, response: Response) -> None:
        # Chat replies are kept with their prompt so that POST /v1/feedback can rate them.
        if chat and store is not None:
            store.record_response(response_id, body["model"], body["messages"], response.texts, source="serve")

    if not body.get("stream"):
        response = model.execute(request)
        data = (_chat_json if chat else _completion_json)(response, body["model"])
        keep(data["id"], response)
        return data
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    stream = model.execute(request, stream=True)
    chunks = iter(stream)
    # Pull the first chunk now, so that an early failure is an HTTP error, not a broken stream.
    try:
        first = next(chunks, None)
    except GenlabError as exc:
        raise _from_genlab(exc) from exc
    return StreamingResponse(_sse(stream, first, chunks, body["model"], chat, request.n, include_usage, keep),
                             media_type="text/event-stream")


def _usage_json(response: Response) -> dict:
    u = response.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens, "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def _chat_json(response: Response, model: str) -> dict:
    return {
        "id": "chatcmpl-" + response.id.removeprefix("genlab-"), "object": "chat.completion",
        "created": int(time.time()), "model": model, "system_fingerprint": "genlab",
        "choices": [{"index": c.index, "message": {"role": "assistant", "content": c.text, "refusal": None},
                     "logprobs": _logprobs_json(c.logprobs), "finish_reason": c.finish_reason or "stop"}
                    for c in response.choices],
        "usage": _usage_json(response),
    }


def _logprobs_json(logprobs: list[dict] | None) -> dict | None:
    if not logprobs:
        return None
    return {"content": [{"token": t["token"], "logprob": t["logprob"], "bytes": list(t["token"].encode()),
                         "top_logprobs": []} for t in logprobs], "refusal": None}


def _completion_json(response: Response, model: str) -> dict:
    return {
        "id": "cmpl-" + response.id.removeprefix("genlab-"), "object": "text_completion",
        "created": int(time.time()), "model": model, "system_fingerprint": "genlab",
        "choices": [{"index": c.index, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason or "stop"}
                    for c in response.choices],
        "usage": _usage_json(response),
    }


def _sse(stream: Stream, first, chunks: Iterator, model: str, chat: bool, n: int,
         include_usage: bool, keep) -> Iterator[str]:
    """Yield OpenAI's server-sent events: role first, content deltas, finish, usage, [DONE]."""
    cid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    base = {"id": cid, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()), "model": model, "system_fingerprint": "genlab"}

    def event(choices: list, **extra: Any) -> str:
        return "data: " + json.dumps({**base, "choices": choices, **extra}) + "\n\n"

    def piece(index: int, text: str, finish: str | None, logprobs: list[dict] | None) -> dict:
        if chat:
            return {"index": index, "delta": {"content": text} if text else {}, "logprobs": _logprobs_json(logprobs),
                    "finish_reason": finish}
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}

    try:
        if chat:
            yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                          "finish_reason": None} for i in range(n)])
        pending = [first] if first is not None else []
        for chunk in itertools.chain(pending, chunks):
            yield event([piece(chunk.index, chunk.text, chunk.finish_reason, chunk.logprobs)])
        keep(cid, stream.response)
        if include_usage:
            yield event([], usage=_usage_json(stream.response))
    except GenlabError as exc:
        err = _from_genlab(exc)
        yield "data: " + json.dumps(_envelope(err.message, err.type, err.param, err.code)) + "\n\n"
    finally:
        stream.close()
    yield "data: [DONE]\n\n"

