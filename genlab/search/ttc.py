"""Test-time compute: spend more samples on a question to get a better answer.

- Self-consistency (Wang et al., 2023): sample k reasoning chains at temperature > 0,
  extract each final answer, return the majority; its vote share is the confidence.
- Best-of-N: sample N candidates, score each with a verifier, return the best with
  every score. A verifier is any ``(question, candidate) -> float``: a Python check,
  the model's own likelihood of its chain ("the one that is most likely"), an
  autorater (`autorater`) or a reward model (`genlab.train.reward.reward_verifier`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from genlab.errors import ConfigError, VerdictUnreadable
from genlab.evaluate.autorater import rate
from genlab.evaluate.builtin import pointwise_metric
from genlab.models import Choice, Model, Usage
from genlab.search.cot import final_number

#: (question, chain) -> score, higher is better; None when the verifier could not score the chain.
Verifier = Callable[[str, Choice], float | None]


@dataclass
class Vote:
    """The outcome of a majority vote over extracted answers."""

    answer: str | None          # None when no chain gave an answer
    confidence: float           # votes for the answer / chains sampled
    votes: Counter = field(default_factory=Counter)


def majority_vote(answers: list[str | None]) -> Vote:
    """Vote over answers (None = no answer, counts as a chain but not a vote).

    Ties go to the answer that reached the top count first, so the result does not
    depend on hash order.
    """
    if not answers:
        raise ConfigError("nothing to vote on: k must be at least 1")
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return Vote(None, 0.0, votes)
    top = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == top)
    return Vote(winner, top / len(answers), votes)


@dataclass
class Sampled:
    """k chains for one question, with what they cost."""

    chains: list[Choice]
    answers: list[str | None]
    usage: Usage
    cost_usd: float


def sample_chains(model: Model, messages: list[dict], k: int, extract: Callable[[str], str | None], *,
                  temperature: float = 0.7, max_tokens: int = 256, seed: int | None = None,
                  logprobs: bool = False) -> Sampled:
    """Sample k chains for a question and extract their answers."""
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if temperature <= 0 and k > 1:
        raise ConfigError("self-consistency needs temperature > 0: greedy decoding gives k identical chains")
    response = model.chat(messages, n=k, temperature=temperature, max_tokens=max_tokens, seed=seed,
                          logprobs=logprobs or None)
    return Sampled(response.choices, [extract(c.text) for c in response.choices], response.usage,
                   response.cost_usd or 0.0)


def self_consistency(model: Model, messages: list[dict], k: int, extract: Callable[[str], str | None],
                     **options) -> tuple[Vote, Sampled]:
    """Sample k chains and return the majority answer with its vote share."""
    sampled = sample_chains(model, messages, k, extract, **options)
    return majority_vote(sampled.answers), sampled


@dataclass
class Best:
    index: int
    answer: str | None
    score: float | None
    scores: list[float | None]


def best_of(question: str, chains: list[Choice], answers: list[str | None], verifier: Verifier) -> Best:
    """Score each candidate with the verifier; return the best (first among ties)."""
    if not chains:
        raise ConfigError("best-of-N needs N >= 1 candidates")
    scores = [verifier(question, chain) for chain in chains]
    index = best_index(scores)
    return Best(index, answers[index], scores[index], scores)


def best_index(scores: list[float | None]) -> int:
    """The highest score's position, the first among ties; a missing score (None) never wins
    over a present one."""
    return max(range(len(scores)), key=lambda i: (scores[i] is not None, scores[i] or 0.0, -i))


def best_of_n(model: Model, messages: list[dict], n: int, extract: Callable[[str], str | None],
              verifier: Verifier, **options) -> tuple[Best, Sampled]:
    """Sample N candidates and return the one the verifier scores highest, with all scores."""
    sampled = sample_chains(model, messages, n, extract, logprobs=verifier is likelihood, **options)
    question = messages[-1]["content"]
    return best_of(question, sampled.chains, sampled.answers, verifier), sampled


# -- verifiers ---------------------------------------------------------------------

def likelihood(question: str, chain: Choice) -> float:
    """The model's mean log-probability per token of its own chain (needs logprobs)."""
    if chain.mean_logprob is None:
        raise ConfigError("the likelihood verifier needs token logprobs; this backend gave none")
    return chain.mean_logprob


_EQUATION = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x×÷])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")
_OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
               "x": lambda a, b: a * b, "×": lambda a, b: a * b,
               "/": lambda a, b: a / b if b else float("nan"), "÷": lambda a, b: a / b if b else float("nan")}


def arithmetic_check(question: str, chain: Choice) -> float:
    """A programmatic verifier of an arithmetic chain that never sees the gold answer.

    It re-computes every equation the chain writes (``a op b = c``). A step counts as right
    when its result is right and each operand is a number of the question or the result of
    an earlier step (a chain cannot verify itself on numbers it made up). The score is the
    share of right steps, halved when the chain's final answer is not its last result; 0
    for a chain with no equation. So 1.0 means a derivation from the question's numbers
    that checks out, which is not the same as a right answer: the chain may compute the
    wrong thing correctly.
    """
    equations = _EQUATION.findall(chain.text)
    if not equations:
        return 0.0
    known = {float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", question)}
    right = 0
    for a, op, b, c in equations:
        a_, b_, c_ = float(a), float(b), float(c)
        if a_ in known and b_ in known and abs(_OPERATIONS[op](a_, b_) - c_) < 1e-6:
            right += 1
        known.add(c_)
    share = right / len(equations)
    stated = final_number(chain.text)
    consistent = stated is not None and abs(float(stated) - float(equations[-1][3])) < 1e-6
    return share if consistent else share / 2


def autorater(judge: Model, metric: str = "question_answering_quality") -> Verifier:
    """An LLM autorater as a verifier: the judge rates the chain as an answer to the question
    on a pointwise metric's rubric (explanation first, then the score), with no reference, so
    it never sees the gold answer. The score is the rating scaled to 0..1; a verdict the
    judge leaves unreadable scores None, which never wins a best-of."""
    rubric = pointwise_metric(metric)
    unavailable = [need for need in rubric.needs if need != "prompt"]
    if unavailable:
        raise ConfigError(f"metric {metric} needs {' and '.join(unavailable)}, which a verifier is not shown; "
                          "choose one that needs at most the prompt")

    def verify(question: str, chain: Choice) -> float | None:
        try:
            return rate(judge, rubric, chain.text, {"prompt": question}).normalized
        except VerdictUnreadable:
            return None

    return verify
