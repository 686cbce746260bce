"""Prices and budgets: what a call cost, and when a run must stop calling.

Prices are shipped in LiteLLM's shape (``input_cost_per_token``,
``cache_read_input_token_cost``, ``output_cost_per_token``) with an ``as_of`` date,
and a user's ``$GENLAB_HOME/prices.json`` of the same shape adds or overrides models.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

from genlab.errors import BudgetExceeded, ConfigError
from genlab.models.response import Usage
from genlab.store import genlab_home

#: Prompt size above which Gemini 2.5 Pro charges its higher rates.
LONG_CONTEXT_TOKENS = 200_000


@lru_cache(maxsize=4)
def _load(user_file: Path) -> dict[str, dict]:
    shipped = json.loads(resources.files("genlab.models").joinpath("data/prices.json").read_text())
    prices = dict(shipped["models"])
    if user_file.is_file():
        try:
            user = json.loads(user_file.read_text(encoding="utf-8-sig"))["models"]
            wrong = next((name for name, entry in user.items() if not isinstance(entry, dict)
                          or not all(isinstance(v, (int, float)) for k, v in entry.items() if "cost" in k)), None)
            if wrong is not None:
                raise ValueError(f"the entry for {wrong!r} is not a table with numbers for its costs")
            prices.update(user)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{user_file} is not a price table ({exc}); "
                              'it must look like {"models": {"NAME": {"input_cost_per_token": ...}}}') from exc
    return prices


def price_table() -> dict[str, dict]:
    """Return the shipped price table with the user's overrides applied."""
    return _load(genlab_home() / "prices.json")


def price_of(model_id: str) -> dict | None:
    """Return the price entry for a model name (``models/`` prefixes ignored), or None."""
    table = price_table()
    name = model_id.removeprefix("models/")
    return table.get(name)


def add_cost(total: float | None, cost: float | None) -> float | None:
    """Sum two costs; an unknown one (None: no price) makes the sum unknown, never 0."""
    return None if total is None or cost is None else total + cost


def cost_usd(model_id: str, usage: Usage, free: bool = False) -> float | None:
    """Return the call's cost in USD, or None when no price is known.

    cost = (prompt − cached)·input + cached·cached_input + completion·output,
    since both OpenAI and Gemini count cached tokens inside prompt_tokens.
    """
    if free:
        return 0.0
    price = price_of(model_id)
    if price is None or "input_cost_per_token" not in price:       # unknown, or an image or speech model
        return None
    long = usage.prompt_tokens > LONG_CONTEXT_TOKENS and "input_cost_per_token_above_200k_tokens" in price
    suffix = "_above_200k_tokens" if long else ""
    input_rate = price["input_cost_per_token" + suffix]
    cached_rate = price.get("cache_read_input_token_cost" + suffix, input_rate)
    output_rate = price["output_cost_per_token" + suffix]
    uncached = usage.prompt_tokens - usage.cached_tokens
    return uncached * input_rate + usage.cached_tokens * cached_rate + usage.completion_tokens * output_rate


def media_cost_usd(model_id: str, *, images: int = 0, characters: int = 0, free: bool = False) -> float | None:
    """What pictures or speech cost, from LiteLLM's ``output_cost_per_image`` and
    ``input_cost_per_character``; None when no price is known."""
    if free:
        return 0.0
    price = price_of(model_id)
    if price is None or (images and "output_cost_per_image" not in price) \
            or (characters and "input_cost_per_character" not in price):
        return None
    return images * price.get("output_cost_per_image", 0.0) + characters * price.get("input_cost_per_character", 0.0)


class Budget:
    """A spending limit in USD and/or tokens, shared by every model (and thread) that uses it.

    USD is a hard ceiling: each call reserves its worst-case cost when it starts (every
    prompt byte a token, once per choice, every choice at its token limit; see
    `Model._worst_case`) and settles the real cost when it ends, so concurrent calls
    cannot together overspend. Tokens are a soft stop: a call is refused once the tokens
    spent plus those reserved by calls in flight reach the limit; the call that crosses
    it completes.
    """

    def __init__(self, usd: float | None = None, tokens: int | None = None, spent_usd: float = 0.0):
        """``spent_usd``: what earlier sessions of the same work spent (a resumed run's budget is its total)."""
        if usd is not None and usd < 0 or tokens is not None and tokens < 0:
            raise ConfigError("a budget must be positive; e.g. --budget-usd 0.50")
        self.usd, self.tokens = usd, tokens
        self.spent_usd, self.spent_tokens, self.calls = spent_usd, 0, 0
        self.reserved_usd, self.reserved_tokens = 0.0, 0
        self._lock = threading.Lock()

    def check(self, model_id: str, free: bool) -> None:
        """Raise BudgetExceeded when a limit is reached; refuse unpriced models under a USD limit."""
        with self._lock:
            self._check(model_id, free)

    def _check(self, model_id: str, free: bool) -> None:
        if self.usd is not None and not free and price_of(model_id) is None:
            raise ConfigError(f"no price is known for '{model_id}', so a USD budget cannot be kept; "
                              "add it to $GENLAB_HOME/prices.json or use a token budget")
        if self.usd is not None and self.spent_usd >= self.usd:
            raise BudgetExceeded(f"the budget of ${self.usd:g} is spent (${self.spent_usd:.4f} over "
                                 f"{self.calls} calls); raise it with --budget-usd")
        if self.tokens is not None and self.spent_tokens + self.reserved_tokens >= self.tokens:
            in_flight = f", {self.reserved_tokens} more held by calls in flight" if self.reserved_tokens else ""
            raise BudgetExceeded(f"the budget of {self.tokens} tokens is spent ({self.spent_tokens} over "
                                 f"{self.calls} calls{in_flight}); raise it with --budget-tokens")

    def reserve(self, model_id: str, free: bool, worst: Usage) -> tuple[float, int]:
        """Admit a call that can use up to ``worst``; return what it holds until `settle`."""
        with self._lock:
            self._check(model_id, free)
            worst_usd = 0.0 if free else (cost_usd(model_id, worst) or 0.0)
            if self.usd is not None and self.spent_usd + self.reserved_usd + worst_usd > self.usd:
                left = self.usd - self.spent_usd - self.reserved_usd
                raise BudgetExceeded(
                    f"this call could cost up to ${worst_usd:.4f} and ${max(left, 0):.4f} of the ${self.usd:g} "
                    f"budget is left (${self.reserved_usd:.4f} held by calls in flight); lower max_tokens, "
                    "wait for the calls in flight, or raise --budget-usd")
            held = (worst_usd, worst.total_tokens)
            self.reserved_usd += held[0]
            self.reserved_tokens += held[1]
            return held

    def reserve_usd(self, model_id: str, free: bool, usd: float | None) -> tuple[float, int]:
        """Admit a call priced per item (a picture, a text to speak), whose cost is known before it starts."""
        with self._lock:
            self._check(model_id, free)
            usd = 0.0 if free else usd or 0.0
            if self.usd is not None and self.spent_usd + self.reserved_usd + usd > self.usd:
                raise BudgetExceeded(f"this call costs ${usd:.4f} and ${max(self.usd - self.spent_usd - self.reserved_usd, 0):.4f} "
                                     f"of the ${self.usd:g} budget is left; raise --budget-usd")
            self.reserved_usd += usd
            return usd, 0

    def settle(self, held: tuple[float, int], usage: Usage, cost: float | None) -> None:
        """Release a reservation and count what the call really used."""
        with self._lock:
            self.reserved_usd -= held[0]
            self.reserved_tokens -= held[1]
            self.calls += 1
            self.spent_tokens += usage.total_tokens
            self.spent_usd += cost or 0.0

    def add(self, usage: Usage, cost: float | None) -> None:
        """Count a call that reserved nothing."""
        self.settle((0.0, 0), usage, cost)
