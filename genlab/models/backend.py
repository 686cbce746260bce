"""The seam every model backend implements: one `execute` method.

A backend turns one validated `Request` into a stream of `Chunk`s followed by one
`Usage`. It declares what it can do as class attributes; everything shared
(retries of a whole call, the response cache, cost, budget, logging, enum mode on
endpoints without it, several choices on endpoints without ``n``) lives once in
`genlab.models.model.Model`, not in each backend.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Iterator

from genlab.models.request import Request
from genlab.models.response import Chunk, Usage


class Backend:
    #: Name used to look up prices and to key the cache (e.g. ``gemini-2.5-flash``).
    model_id: str = ""
    #: Takes ``top_k`` (directly or as an extra the server understands).
    supports_top_k: bool = False
    #: Returns exactly one of a list of strings when asked with an ``enum`` format.
    supports_enum: bool = False
    #: Follows a GBNF grammar (``Request.grammar``, as llama.cpp's server takes it).
    supports_grammar: bool = False
    #: Returns ``n`` choices from one call.
    supports_n: bool = False
    #: Has a plain-text completions endpoint (``prompt`` instead of ``messages``).
    supports_completions: bool = True
    #: Follows a ``response_format`` (JSON schema, or enum mode turned into one).
    supports_structured_output: bool = True
    #: Returns per-token log-probabilities when asked.
    supports_logprobs: bool = True
    #: Takes OpenAI's ``presence_penalty`` and ``frequency_penalty``.
    supports_penalties: bool = True
    #: Takes OpenAI's ``logit_bias`` (token id -> bias).
    supports_logit_bias: bool = True
    #: Takes message content parts other than text (images, audio, files); the endpoint
    #: decides which kinds.
    supports_media: bool = False
    #: Continues a plain prompt better than it answers a chat (evolve's ``--mode auto``).
    prefers_completions: bool = False
    #: Runs on this machine at no charge (tokens are still counted).
    free: bool = False
    #: Tokens generated per choice when a request sets no ``max_tokens`` (None: the
    #: endpoint decides; a budget then assumes `ASSUMED_MAX_TOKENS`).
    default_max_tokens: int | None = None

    def execute(self, request: Request, stream: bool) -> Iterator[Chunk | Usage]:
        """Run one call: yield text chunks (one per choice when not streaming), then usage."""
        raise NotImplementedError

    def describe(self) -> str:
        """Return one line saying what this backend is, for ``genlab models``."""
        return self.model_id

    def weights_tag(self) -> str:
        """Identify the weights behind ``model_id`` where they are files on this machine,
        so that the response cache never answers for other weights under the same name
        (a model retrained into the same folder); '' where the name is all there is."""
        return ""

    def decoding_tag(self, request: Request) -> str:
        """Name how this backend decodes ``request`` where genlab has changed that for the same
        request and weights (the response cache must not replay an answer decoded the old
        way); '' where there is one way."""
        return ""

    def warm_up(self) -> None:
        """Load what the first call would otherwise wait for (a server calls it at start-up)."""


#: Worst case assumed per choice when neither the request nor the backend bounds it.
ASSUMED_MAX_TOKENS = 4096

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s#?]+@")
_SECRET_PARAM = re.compile(r"(?i)([?&](?:api[-_]?key|key|token|access_token|secret|password|sig|signature)=)[^&#\s]+")


def choose_label(scores: list[float], temperature: float | None, seed: int | None) -> int:
    """Enum mode's choice among labels scored whole (summed log-probabilities): the likeliest
    label's index, or one drawn from the labels' softmax at ``temperature`` with ``seed``."""
    if not temperature:
        return max(range(len(scores)), key=scores.__getitem__)
    top = max(scores)
    weights = [math.exp((score - top) / temperature) for score in scores]
    return random.Random(seed).choices(range(len(scores)), weights)[0]


def files_tag(*paths: Path) -> str:
    """Size and modification time of each file that exists: cheap, and changed by any rewrite."""
    stats = [path.stat() for path in paths if path.is_file()]
    return ";".join(f"{s.st_size}:{s.st_mtime_ns}" for s in stats)


def redact(text: str) -> str:
    """Hide credentials inside URLs (``user:pass@``, ``?key=…``) before text reaches the
    store, an error message, a report or a client."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
