"""What comes back from a model: chunks while it streams, a `Response` at the end."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Usage:
    """Token counts of one call. ``prompt_tokens`` includes ``cached_tokens``."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.prompt_tokens + other.prompt_tokens,
                     self.cached_tokens + other.cached_tokens,
                     self.completion_tokens + other.completion_tokens)


def token_logprobs(content: list[dict] | None, top: int | None) -> list[dict] | None:
    """OpenAI's ``logprobs.content`` as genlab keeps it: each token with its log-probability,
    and its ``top`` likeliest alternatives when they were asked for (llama.cpp sends some
    that were not)."""
    if not content:
        return None
    kept = []
    for token in content:
        entry = {"token": token["token"], "logprob": token["logprob"]}
        if top:
            entry["top_logprobs"] = [{"token": t["token"], "logprob": t["logprob"]}
                                     for t in (token.get("top_logprobs") or [])[:top]]
        kept.append(entry)
    return kept


@dataclass
class Chunk:
    """A piece of streamed text for choice ``index``; the last one has ``finish_reason``."""

    index: int
    text: str = ""
    finish_reason: str | None = None
    logprobs: list[dict] | None = None  # token_logprobs() of this piece, when asked for


@dataclass
class Choice:
    index: int
    text: str
    finish_reason: str | None
    logprobs: list[dict] | None = None  # token_logprobs() of every generated token, when asked for

    @property
    def mean_logprob(self) -> float | None:
        """Average log-probability per token: how likely the model found its own answer."""
        if not self.logprobs:
            return None
        return sum(t["logprob"] for t in self.logprobs) / len(self.logprobs)


@dataclass
class Response:
    """A finished call: the choices, usage, cost and timing."""

    id: str
    model: str
    choices: list[Choice]
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    cache_hit: bool = False

    @property
    def text(self) -> str:
        """Text of the first choice."""
        return self.choices[0].text if self.choices else ""

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.choices]

    def json(self, index: int = 0) -> Any:
        """Parse choice ``index`` as JSON (for json_object / json_schema output)."""
        return json.loads(self.choices[index].text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Response":
        return cls(
            id=data["id"], model=data["model"],
            choices=[Choice(**c) for c in data["choices"]],
            usage=Usage(**data["usage"]), cost_usd=data.get("cost_usd"),
            latency_s=data.get("latency_s", 0.0), cache_hit=data.get("cache_hit", False),
        )
