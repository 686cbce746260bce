"""``/v1/images/generations`` (designed cards), ``/v1/audio/speech`` (espeak-ng) and
``/v1/embeddings`` (the embedded all-MiniLM-L6-v2) in OpenAI's shapes, so any OpenAI client,
and genlab's own remote image and speech backends, can ask a genlab server for pictures,
speech and vectors offline.

Pictures and speech go through `genlab.models.media.Metered` (budget, the calls ledger);
embeddings cost nothing and are a row in the ledger too. All run on the server's worker
threads behind their own admission queue (429 when it is full).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from fastapi import FastAPI, Request as HttpRequest
from fastapi.responses import Response as HttpResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genlab.errors import ApiError, GenlabError
from genlab.ground.embed import DEFAULT_EMBEDDER
from genlab.io import validation_problems
from genlab.models import get_backend
from genlab.models.media import MOODS, Metered, PictureRequest
from genlab.serve.guard import Admission, ServeLimits
from genlab.store import CallRecord

IMAGE_MODELS = ("cards",)
SPEECH_MODELS = ("espeak",)
EMBEDDING_MODELS = (DEFAULT_EMBEDDER,)
MAX_EMBEDDING_INPUTS = 2048     # texts per request, as OpenAI
#: OpenAI's voice names: a client that sends one gets espeak-ng's default voice.
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}


class ImageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    prompt: str = Field(min_length=1, max_length=4000)
    n: int = Field(1, ge=1, le=4)
    size: str = "1280x720"
    response_format: Literal["b64_json"] = "b64_json"
    user: str | None = None


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    input: str = Field(min_length=1, max_length=4096)
    voice: str = "alloy"
    response_format: Literal["wav"] = "wav"


class EmbeddingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    # Text only: token ids are another model's (OpenAI's clients send text unless told otherwise).
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


def add_media_routes(app: FastAPI, workers: ThreadPoolExecutor, store, budget, limits: ServeLimits,
                     read_json) -> None:
    admission = Admission(limits.slots, limits.queue, limits.queue_timeout_s)
    cards = Metered(get_backend("cards", "image"), store=store, budget=budget, source="serve")
    voices: dict[str, Metered] = {}

    async def run(job, *args):
        await admission.acquire()
        try:
            return await asyncio.get_running_loop().run_in_executor(workers, job, *args)
        finally:
            admission.release()

    @app.post("/v1/images/generations")
    async def images(http: HttpRequest) -> dict:
        body = _parse(ImageBody, await read_json(http), "image", IMAGE_MODELS)
        request = card_request(body.prompt, _size(body.size))
        pictures = [await run(cards.picture, request) for _ in range(body.n)]
        return {"created": int(time.time()), "data": [{"b64_json": base64.b64encode(p).decode()} for p in pictures]}

    @app.post("/v1/audio/speech")
    async def speech(http: HttpRequest) -> HttpResponse:
        body = _parse(SpeechBody, await read_json(http), "speech", SPEECH_MODELS)
        voice = "espeak" if body.voice in OPENAI_VOICES else f"espeak:{body.voice}"
        if voice not in voices:
            voices[voice] = Metered(get_backend(voice, "speech"), store=store, budget=budget, source="serve")
        speech = await run(voices[voice].speak, body.input)
        return HttpResponse(speech.to_wav(), media_type="audio/wav")

    @app.post("/v1/embeddings")
    async def embeddings(http: HttpRequest) -> dict:
        body = _parse(EmbeddingBody, await read_json(http), "embedding", EMBEDDING_MODELS)
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not 1 <= len(texts) <= MAX_EMBEDDING_INPUTS:    # a text of any length: the body's size bounds it
            raise ApiError(400, f"invalid 'input': give 1 to {MAX_EMBEDDING_INPUTS} texts (got {len(texts)})",
                           param="input")
        if not all(texts):
            raise ApiError(400, "invalid 'input': an empty string has no embedding; drop it", param="input")
        vectors, tokens = await run(_embed, store, texts, body.dimensions)
        encode = (lambda v: base64.b64encode(v.astype("<f4").tobytes()).decode()) \
            if body.encoding_format == "base64" else (lambda v: v.tolist())
        return {"object": "list", "model": body.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]}


def _embed(store, texts: list[str], dimensions: int | None):
    """On a worker thread: the unit vectors of ``texts`` and the tokens read, logged as one call."""
    from genlab.ground.embed import load_embedder

    start = time.perf_counter()
    embedder = load_embedder()
    if dimensions not in (None, embedder.dim):
        raise ApiError(400, f"invalid 'dimensions': {embedder.name} gives {embedder.dim}", param="dimensions")
    vectors, tokens = embedder.encode(texts), sum(embedder.token_counts(texts))
    try:
        store.log_call(CallRecord(
            model=embedder.name, request_hash=hashlib.sha256("\0".join(texts).encode()).hexdigest()[:32],
            prompt_tokens=tokens, cached_tokens=0, completion_tokens=0, latency_s=time.perf_counter() - start,
            cost_usd=0.0, source="serve"))
    except GenlabError:
        pass      # the vectors are worth more than their log row
    return vectors, tokens


def card_request(prompt: str, size: tuple[int, int]) -> PictureRequest:
    """A card from an image prompt: its title (a 'Title: …' part, else its first phrase),
    the rest as the quote, and a mood named in it (else calm)."""
    named = re.search(r"Title:\s*([^.]+)", prompt)
    title = named.group(1).strip() if named else re.split(r"[.:;,]\s", prompt, maxsplit=1)[0]
    title = title if len(title) <= 60 else title[:59].rsplit(" ", 1)[0] + "…"
    mood = next((m for m in MOODS if re.search(rf"\b{m}\b", prompt, re.I)), "calm")
    quote = re.sub(r"\s*(Mood|Title):[^.]*\.?", "", prompt).strip()
    quote = "" if quote == title else quote[:140]
    return PictureRequest(prompt, title, quote, mood, size)


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()) or not (64 <= int(width) <= 3840 and 64 <= int(height) <= 2160):
        raise ApiError(400, f"invalid 'size': {text!r}; give WIDTHxHEIGHT between 64x64 and 3840x2160", param="size")
    return int(width), int(height)


def _parse(shape: type[BaseModel], body: dict, kind: str, served: tuple[str, ...]):
    """The request body as ``shape``, for one of the ``served`` models; a 400 or 404 naming the problem."""
    try:
        parsed = shape(**body)
    except ValidationError as exc:
        param, message = validation_problems(exc)[0]
        if param == "response_format":
            message = f"genlab serve answers response_format={shape.model_fields['response_format'].default} only"
        raise ApiError(400, f"invalid '{param}': {message}" if param else message, param=param or None) from None
    if parsed.model not in served:
        raise ApiError(404, f"the {kind} model '{parsed.model}' does not exist here; served: {', '.join(served)}",
                       param="model", code="model_not_found")
    return parsed
