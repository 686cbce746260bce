"""LLM autoraters: pointwise ("on a scale of 1 to 5, and why") and pairwise ("which is
better, and why"), with any genlab model as the judge.

The judge answers through structured output: a JSON schema whose score (or choice) is
an enum and whose explanation comes first, so the reasoning precedes the verdict and
parsing cannot fail (a grammar on the embedded model, strict JSON schema elsewhere).
Pairwise runs both orders to cancel position bias; an order-dependent verdict counts
as a tie, and position consistency is reported.

A judge that ignores the schema (an endpoint without structured output) may still
answer something unreadable: the call is retried a bounded number of times with other
seeds, then `VerdictUnreadable` carries the raw reply so a caller can record it and go on.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import ConfigError, VerdictUnreadable
from genlab.models import Model, add_cost

EXPLANATION_CHARS = 300
#: The grammar caps the explanation at EXPLANATION_CHARS characters, and a token holds at
#: least one character, so this many tokens always reach the end of the JSON verdict.
VERDICT_TOKENS = EXPLANATION_CHARS + 100


@dataclass(frozen=True)
class JudgeSettings:
    """How the judge is called. The defaults make a verdict repeatable: greedy and seeded
    (a seeded call on the embedded model decodes alone, without prompt-cache reuse)."""

    max_tokens: int = VERDICT_TOKENS
    temperature: float | None = None   # None: 0 for one sample, 0.7 when several are drawn
    samples: int = 1                   # verdicts drawn per call; the majority wins
    seed: int | None = 0               # None: unseeded (not repeatable)
    retries: int = 1                   # extra calls, with other seeds, when a verdict cannot be read

    def call_options(self, attempt: int) -> dict[str, Any]:
        temperature = self.temperature if self.temperature is not None else (0 if self.samples == 1 else 0.7)
        seed = None if self.seed is None else self.seed + 1000 * attempt
        # A retry of a greedy call with a cache hit or the same seed repeats itself: sample instead.
        if attempt and temperature == 0:
            temperature = 0.7
        return {"n": self.samples, "temperature": temperature, "max_tokens": self.max_tokens, "seed": seed}


@dataclass
class JudgeCall:
    """Verdicts read from one judge request (after any retries), and what the calls cost."""

    verdicts: list[dict[str, Any]]
    tokens: int
    cost_usd: float | None


def ask_judge(judge: Model, prompt: str, schema: dict, key: str, settings: JudgeSettings,
              cache: bool) -> JudgeCall:
    """Send one judge prompt under a JSON schema; retry unreadable replies; raise VerdictUnreadable."""
    fmt = {"type": "json_schema", "json_schema": {"name": key, "schema": schema, "strict": True}}
    tokens, cost = 0, 0.0
    for attempt in range(settings.retries + 1):
        response = judge.chat(prompt, response_format=fmt, cache=cache, **settings.call_options(attempt))
        tokens += response.usage.total_tokens
        cost = add_cost(cost, response.cost_usd)
        try:
            return JudgeCall([_parse(choice.text, key) for choice in response.choices], tokens, cost)
        except VerdictUnreadable as exc:
            unreadable = exc
    unreadable.tokens, unreadable.cost_usd = tokens, cost
    unreadable.args = (f"{unreadable.args[0]} after {settings.retries + 1} calls",)
    raise unreadable


@dataclass(frozen=True)
class PointwiseMetric:
    """A rubric metric: criteria, a rating rubric (score -> description), optional steps and examples."""

    name: str
    definition: str
    criteria: dict[str, str]
    rubric: dict[int, str]
    steps: tuple[str, ...] = ("Assess the response against each criterion.",
                              "Give a short explanation, then the score from the rubric.")
    examples: tuple[dict, ...] = ()
    needs: tuple[str, ...] = ()          # inputs it requires besides the response: prompt, reference, context
    pass_score: int | None = None        # with the best at the top: default the middle of the scale, rounded up
    best: int | None = None              # the best score; default the top (verbosity's is 0, the middle)
    tolerance: int = 0                   # with the best inside the scale: how far from it still passes

    def __post_init__(self) -> None:
        # A custom metric comes from a user's suite: one that no score could pass is refused
        # before any judge call, not found out from a report where every row failed.
        where = f"metric {self.name}"
        if not self.criteria:
            raise ConfigError(f"{where} has no criteria; give at least one, e.g. criteria: {{brevity: \"Is it short?\"}}")
        if len(self.rubric) < 2:
            raise ConfigError(f"{where}: a rubric needs at least two scores, e.g. rubric: {{5: good, 1: bad}}")
        low, high = self.scale
        for key in ("best", "pass_score", "tolerance"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{where}: {key} must be a whole number, got {value!r}")
        if self.best is not None and self.best not in self.rubric:
            raise ConfigError(f"{where}: best {self.best!r} is not one of its rubric's scores ({low}…{high})")
        if self.pass_score is not None and not low <= self.pass_score <= high:
            raise ConfigError(f"{where}: pass_score {self.pass_score!r} is outside its rubric's scale ({low}…{high})")
        if self.pass_score is not None and self.best_score != high:
            raise ConfigError(f"{where}: pass_score counts up to the top of the scale, but its best is {self.best}; "
                              "with the best inside the scale, give tolerance (how far from it still passes)")
        if self.tolerance < 0:
            raise ConfigError(f"{where}: tolerance must be 0 or more, got {self.tolerance}")

    @property
    def scale(self) -> tuple[int, int]:
        return min(self.rubric), max(self.rubric)

    @property
    def best_score(self) -> int:
        return self.scale[1] if self.best is None else self.best

    def passes(self, score: int) -> bool:
        low, high = self.scale
        if self.best_score == high:
            threshold = self.pass_score if self.pass_score is not None else math.ceil((low + high) / 2)
            return score >= threshold
        return abs(score - self.best_score) <= self.tolerance

    def normalized(self, score: int) -> float:
        """1.0 at the best score, 0.0 at the farthest end of the scale from it."""
        low, high = self.scale
        span = max(self.best_score - low, high - self.best_score)
        return 1.0 - abs(score - self.best_score) / span if span else 1.0


@dataclass(frozen=True)
class PairwiseMetric:
    name: str
    definition: str
    criteria: dict[str, str]
    needs: tuple[str, ...] = ()


def _inputs_block(inputs: dict[str, str]) -> str:
    titles = {"prompt": "Prompt", "reference": "Reference answer", "context": "Context (the source)",
              "history": "Conversation so far"}
    return "\n".join(f"### {titles.get(k, k.title())}\n{v}\n" for k, v in inputs.items() if v)


def pointwise_prompt(metric: PointwiseMetric, response: str, inputs: dict[str, str]) -> str:
    lines = ["# Instruction",
             "You are an expert evaluator. Rate the AI-generated response using the criteria and the rating "
             "rubric below. Explain briefly, then give the score.",
             "", "## Metric definition", metric.definition, "", "## Criteria",
             *[f"- {name}: {text}" for name, text in metric.criteria.items()],
             "", "## Rating rubric", *[f"{score}: {text}" for score, text in sorted(metric.rubric.items(), reverse=True)],
             "", "## Evaluation steps", *[f"{i}. {step}" for i, step in enumerate(metric.steps, 1)]]
    for i, example in enumerate(metric.examples, 1):
        lines += ["", f"## Example {i}", _inputs_block({k: v for k, v in example.items()
                                                       if k not in ("score", "explanation")}),
                  f"Verdict: {{\"explanation\": {example.get('explanation', '')!r}, \"score\": {example['score']}}}"]
    lines += ["", "# User inputs and AI-generated response", _inputs_block(inputs), "### Response", response]
    return "\n".join(lines)


def pairwise_prompt(metric: PairwiseMetric, response_a: str, response_b: str, inputs: dict[str, str]) -> str:
    lines = ["# Instruction",
             "You are an expert evaluator. Compare two AI-generated responses, A and B, using the criteria. "
             "Analyse A, analyse B, compare them, then choose A, B, or SAME if they are equally good.",
             "", "## Metric definition", metric.definition, "", "## Criteria",
             *[f"- {name}: {text}" for name, text in metric.criteria.items()],
             "", "# User inputs and AI-generated responses", _inputs_block(inputs),
             "### Response A", response_a, "", "### Response B", response_b]
    return "\n".join(lines)


@dataclass
class PointwiseVerdict:
    score: int
    explanation: str
    passed: bool
    normalized: float
    samples: list[int] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float | None = 0.0


def rate(judge: Model, metric: PointwiseMetric, response: str, inputs: dict[str, str], *,
         settings: JudgeSettings = JudgeSettings(), cache: bool = True) -> PointwiseVerdict:
    """Score one response on the metric's rubric; several samples are aggregated by majority."""
    missing = [k for k in metric.needs if not inputs.get(k)]
    if missing:
        raise ConfigError(f"metric {metric.name} needs {', '.join(missing)} for each row")
    schema = {"type": "object", "additionalProperties": False, "required": ["explanation", "score"],
              "properties": {"explanation": {"type": "string", "maxLength": EXPLANATION_CHARS},
                             "score": {"type": "integer", "enum": sorted(metric.rubric)}}}
    call = ask_judge(judge, pointwise_prompt(metric, response, inputs), schema, "score", settings, cache)
    scores = [int(v["score"]) for v in call.verdicts]
    top = Counter(scores).most_common(1)[0][0]
    explanation = next(v["explanation"] for v in call.verdicts if int(v["score"]) == top)
    return PointwiseVerdict(top, explanation, metric.passes(top), metric.normalized(top), scores, call.tokens,
                            call.cost_usd)


def _parse(text: str, key: str) -> dict[str, Any]:
    import json

    try:
        data = json.loads(text)
        data[key]
        return data
    except (ValueError, KeyError, TypeError):
        raise VerdictUnreadable(f"the judge's verdict is not JSON with a {key!r} ({text[:120]!r}); raise "
                                "judge: {max_tokens: N} in the suite, or use a judge that supports JSON schemas",
                                raw=text) from None


@dataclass
class PairwiseVerdict:
    """The candidate's result against the baseline, with both orders' raw choices."""

    winner: str                 # candidate, baseline or tie
    consistent: bool            # both orders agreed
    order1: str                 # choice with A = candidate: A, B or SAME
    order2: str                 # choice with A = baseline
    explanation: str
    tokens: int = 0
    cost_usd: float | None = 0.0


def compare(judge: Model, metric: PairwiseMetric, candidate: str, baseline: str, inputs: dict[str, str], *,
            settings: JudgeSettings = JudgeSettings(), cache: bool = True) -> PairwiseVerdict:
    """Judge candidate vs baseline in both orders (A/B swapped) and combine."""
    schema = {"type": "object", "additionalProperties": False, "required": ["explanation", "choice"],
              "properties": {"explanation": {"type": "string", "maxLength": EXPLANATION_CHARS},
                             "choice": {"type": "string", "enum": ["A", "SAME", "B"]}}}
    tokens, cost = 0, 0.0
    choices, explanations = [], []
    for a, b in ((candidate, baseline), (baseline, candidate)):
        call = ask_judge(judge, pairwise_prompt(metric, a, b, inputs), schema, "choice", settings, cache)
        tokens += call.tokens
        cost = add_cost(cost, call.cost_usd)
        top = Counter(v["choice"] for v in call.verdicts).most_common(1)[0][0]
        choices.append(top)
        explanations.append(next(v["explanation"] for v in call.verdicts if v["choice"] == top))
    as_candidate = [{"A": "candidate", "B": "baseline", "SAME": "tie"}[choices[0]],
                    {"A": "baseline", "B": "candidate", "SAME": "tie"}[choices[1]]]
    consistent = as_candidate[0] == as_candidate[1]
    winner = as_candidate[0] if consistent else "tie"
    return PairwiseVerdict(winner, consistent, choices[0], choices[1], explanations[0], tokens, cost)


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion (scipy's), (0, 0) for no trials."""
    if n == 0:
        return 0.0, 0.0
    from scipy.stats import binomtest

    interval = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)
