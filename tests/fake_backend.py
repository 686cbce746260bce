"""FakeBackend: a scripted backend for unit tests of Model's control logic only.

Everything that checks real model behaviour uses the embedded model or a real
HTTP server instead.
"""

from __future__ import annotations

from genlab.errors import ModelError
from genlab.models import Backend, Chunk, Request, Usage


class FakeBackend(Backend):
    model_id = "fake-model"
    supports_top_k = False
    supports_enum = False
    supports_n = False
    supports_completions = False
    supports_penalties = False
    supports_logit_bias = False
    free = False

    def __init__(self, answers=None, fail=False):
        self.answers = list(answers or [])
        self.fail = fail
        self.calls: list[Request] = []

    def execute(self, request: Request, stream: bool):
        self.calls.append(request)
        if self.fail:
            raise ModelError("fake failure")
        text = self.answers.pop(0) if self.answers else f"answer {len(self.calls)}"
        if stream:
            for piece in (text[: len(text) // 2], text[len(text) // 2:]):
                yield Chunk(0, piece)
            yield Chunk(0, "", "stop")
        else:
            yield Chunk(0, text, "stop")
        yield Usage(prompt_tokens=10, cached_tokens=2, completion_tokens=5)
