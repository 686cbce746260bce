"""What `genlab serve` checks before a request reaches a model: its size and shape, who
sent it (Host header, API key), and whether there is room for it (a bounded queue).

Browsers are the threat model for a server on loopback: a web page may POST to
127.0.0.1 (a ``text/plain`` body needs no CORS preflight) or reach it through a DNS
name it controls (DNS rebinding). So bodies must be ``application/json`` and the Host
header must name this server.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from genlab.errors import ApiError, ConfigError, GenlabError
from genlab.io import validation_problems

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on one request and on the work a server takes on at once (per model)."""

    max_body_bytes: int = 1 << 20     # 413 above
    max_messages: int = 256
    max_n: int = 8
    max_tokens: int = 4096            # per choice
    max_total_tokens: int = 16384     # n x max_tokens
    max_stop: int = 4                 # as OpenAI
    max_stop_chars: int = 128
    max_enum_labels: int = 256
    max_schema_bytes: int = 32768     # response_format's JSON schema, serialized
    max_schema_depth: int = 16
    max_grammar_bytes: int = 65536
    slots: int = 4                    # requests generating at once, per model
    queue: int = 32                   # requests waiting for a slot, per model; 429 beyond
    queue_timeout_s: float = 30.0     # longest wait for a slot; 429 after
    body_timeout_s: float = 30.0      # longest wait for a whole request body; 408 after


def envelope(exc: GenlabError) -> dict:
    """OpenAI's error body for a genlab error."""
    return {"error": {"message": str(exc), "type": exc.error_type, "param": exc.param, "code": exc.code}}


# -- who may call ---------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, api_key: str | None) -> None:
    """Refuse to serve beyond this machine without a key (anyone on the network could spend it)."""
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"refusing to serve on {host} without an API key: anyone who can reach it could use "
                          "the models; set GENLAB_SERVE_API_KEY (not --api-key, which other users see in ps), "
                          "or serve on 127.0.0.1")


def allowed_hosts(host: str, extra: list[str] | None = None) -> set[str] | None:
    """Host header values this server answers to: loopback names, the bound address and
    ``extra`` (e.g. the name a reverse proxy forwards); None: any (bound to every address,
    which needs a key)."""
    if host in ("0.0.0.0", "::", ""):
        return None
    return LOOPBACK_NAMES | {host.strip("[]").lower()} | {h.lower() for h in extra or []}


def host_of(header: str) -> str:
    """The host name of a Host header, without the port ('[::1]:80' -> '::1')."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: Host header, API key, content type and body size, before any route."""

    def __init__(self, app, *, host: str, api_key: str | None, limits: ServeLimits,
                 allow_hosts: list[str] | None = None):
        self.app, self.api_key, self.limits = app, api_key, limits
        self.hosts = allowed_hosts(host, allow_hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            self._check(scope)
        except ApiError as exc:
            return await send_error(send, exc)
        await self.app(scope, self._bounded(receive, send), send)

    def _check(self, scope) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.hosts is not None and host_of(headers.get("host", "")) not in self.hosts:
            raise ApiError(403, f"this server answers only to {', '.join(sorted(self.hosts))} in the Host header "
                           "(a guard against DNS rebinding); connect by that name, or start the server with "
                           "--allow-host NAME", code="host_not_allowed")
        if self.api_key and scope["path"].startswith("/v1"):
            sent = headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {self.api_key}".encode()):
                raise ApiError(401, "incorrect API key; send it as 'Authorization: Bearer KEY'",
                               "authentication_error", code="invalid_api_key")
        if scope["method"] == "POST":
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise ApiError(415, f"send the body as application/json (got {media or 'no content type'})",
                               code="unsupported_media_type")
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limits.max_body_bytes):
                raise self._too_large()

    def _too_large(self) -> ApiError:
        return ApiError(413, f"the request body is over {self.limits.max_body_bytes} bytes; send less",
                        code="request_too_large")

    def _bounded(self, receive, send):
        """Count the bytes of a body sent without Content-Length (chunked)."""
        seen = 0
        cap = self.limits.max_body_bytes

        async def bounded():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise BodyTooLarge()
            return message

        return bounded


class BodyTooLarge(Exception):
    pass


async def send_error(send, exc: ApiError) -> None:
    body = json.dumps(envelope(exc)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- what a request may ask for -------------------------------------------------------------

def depth_of(value: Any, limit: int) -> int:
    """Nesting depth of JSON data, counted without recursion and stopping past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def invalid_request(exc: ValidationError) -> ApiError:
    """A 400 naming the first invalid field, from pydantic's error."""
    param, message = validation_problems(exc)[0]
    return ApiError(400, f"invalid '{param}': {message}" if param else message, param=param or None)


def check_body(body: dict, limits: ServeLimits) -> None:
    """A 400 naming the limit for a request that asks for too much, before it is parsed."""
    def refuse(message: str, param: str) -> ApiError:
        return ApiError(400, message, param=param, code="limit_exceeded")

    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > limits.max_messages:
        raise refuse(f"at most {limits.max_messages} messages per request (got {len(messages)})", "messages")
    n = body.get("n")
    if isinstance(n, int) and n > limits.max_n:
        raise refuse(f"n is at most {limits.max_n} here (got {n})", "n")
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if isinstance(value, (int, float)) and value > limits.max_tokens:
            raise refuse(f"{field} is at most {limits.max_tokens} here (got {value:g})", field)
    if isinstance(n, int) and n > 1:
        per_choice = body.get("max_tokens") or body.get("max_completion_tokens") or limits.max_tokens
        if isinstance(per_choice, (int, float)) and n * per_choice > limits.max_total_tokens:
            raise refuse(f"n x max_tokens is at most {limits.max_total_tokens} here (got {n} x {per_choice:g}); "
                         "lower one of them", "n")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    if len(stops) > limits.max_stop:
        raise refuse(f"at most {limits.max_stop} stop sequences (got {len(stops)})", "stop")
    if any(isinstance(s, str) and len(s) > limits.max_stop_chars for s in stops):
        raise refuse(f"a stop sequence is at most {limits.max_stop_chars} characters", "stop")
    grammar = body.get("grammar")
    if isinstance(grammar, str) and len(grammar.encode()) > limits.max_grammar_bytes:
        raise refuse(f"the grammar is over {limits.max_grammar_bytes} bytes", "grammar")
    fmt = body.get("response_format")
    tools = body.get("tools")
    # A schema is nested two levels down in either: response_format.json_schema.schema,
    # tools[i].function.parameters.
    for param, schema in [("response_format", fmt)] + [("tools", t) for t in tools or () if isinstance(tools, list)]:
        if not isinstance(schema, dict):
            continue
        if depth_of(schema, limits.max_schema_depth + 2) > limits.max_schema_depth + 2:
            raise refuse(f"the JSON schema nests deeper than {limits.max_schema_depth} levels", param)
        if len(json.dumps(schema)) > limits.max_schema_bytes:
            raise refuse(f"{'the response format' if param == 'response_format' else 'a tool'} is over "
                         f"{limits.max_schema_bytes} bytes", param)
    if isinstance(fmt, dict):
        labels = fmt.get("enum")
        if isinstance(labels, list) and len(labels) > limits.max_enum_labels:
            raise refuse(f"at most {limits.max_enum_labels} enum labels (got {len(labels)})", "response_format")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage"}
                                or not isinstance(options.get("include_usage", False), bool)):
        raise ApiError(400, "stream_options must be {\"include_usage\": true|false}", param="stream_options")


# -- room for the work --------------------------------------------------------------------

class Admission:
    """At most ``slots`` requests generate at once; up to ``queue`` wait, each at most
    ``timeout_s``; beyond that a 429 with Retry-After, at once, instead of a hang."""

    def __init__(self, slots: int, queue: int, timeout_s: float):
        self.slots, self.queue, self.timeout_s = slots, queue, timeout_s
        self.active = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(slots)

    def _busy(self, why: str) -> ApiError:
        retry = max(1, math.ceil(self.timeout_s / 10))
        return ApiError(429, f"the server is busy ({self.active} requests generating, {self.waiting} waiting; "
                        f"{why}); retry in {retry} s", "requests", code="rate_limit_exceeded",
                        headers={"Retry-After": str(retry)})

    async def acquire(self) -> None:
        if self._free.locked():
            if self.waiting >= self.queue:
                raise self._busy("the queue is full")
            self.waiting += 1
            try:
                await asyncio.wait_for(self._free.acquire(), self.timeout_s)
            except asyncio.TimeoutError:
                raise self._busy(f"waited {self.timeout_s:g} s for a slot") from None
            finally:
                self.waiting -= 1
        else:
            await self._free.acquire()
        self.active += 1

    def release(self) -> None:
        self.active -= 1
        self._free.release()
