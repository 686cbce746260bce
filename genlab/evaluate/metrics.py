"""Computational assertions: checks that need a reference or a rule, not a judge.

Each assertion type is one function ``(output, value, context) -> Score``; the registry
`ASSERTIONS` is where a suite's ``type:`` is looked up. A ``not-`` prefix negates any
type. BLEU comes from `sacrebleu`, ROUGE from `rouge-score`, edit distance from
`rapidfuzz`: maintained implementations, not hand-written math.
"""

from __future__ import annotations

import importlib.util
import json
import numbers
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jsonschema

from genlab.errors import ConfigError, UserCodeError


@dataclass
class Score:
    """One assertion's verdict on one output: a score in [0, 1] and whether it passed."""

    score: float
    passed: bool
    reason: str = ""


@dataclass
class Context:
    """What an assertion may look at besides the output."""

    vars: dict[str, Any]
    latency_s: float = 0.0
    cost_usd: float | None = 0.0
    base_dir: Path = Path(".")


def _binary(ok: bool, reason: str) -> Score:
    return Score(1.0 if ok else 0.0, ok, reason)


def _texts(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def equals(output: str, value: Any, ctx: Context) -> Score:
    ok = output.strip() == str(value).strip()
    return _binary(ok, "exact match" if ok else f"expected {str(value)[:80]!r}")


def contains(output: str, value: Any, ctx: Context) -> Score:
    ok = str(value) in output
    return _binary(ok, f"{'contains' if ok else 'does not contain'} {str(value)[:60]!r}")


def icontains(output: str, value: Any, ctx: Context) -> Score:
    ok = str(value).lower() in output.lower()
    return _binary(ok, f"{'contains' if ok else 'does not contain'} {str(value)[:60]!r} (any case)")


def _contains_some(every: bool, any_case: bool) -> Callable[[str, Any, Context], Score]:
    """contains-any / contains-all, and their i- forms that ignore case (as promptfoo's)."""
    def check(output: str, value: Any, ctx: Context) -> Score:
        fold = str.lower if any_case else str
        missing = [v for v in _texts(value) if fold(v) not in fold(output)]
        found = [v for v in _texts(value) if v not in missing]
        case = " (any case)" if any_case else ""
        if every:
            return _binary(not missing, f"all found{case}" if not missing else f"missing {missing}{case}")
        return _binary(bool(found), f"found {found}{case}" if found else f"none of {missing} found{case}")
    return check


def check_value(kind: str, value: Any) -> None:
    """Raise ConfigError when ``value`` cannot be used by an assertion of this type (a
    number for latency and cost, a pattern for regex, a JSON schema for is-json)."""
    if kind in ("latency", "cost"):
        try:
            if float(value) >= 0:
                return
        except (TypeError, ValueError):
            pass
        unit = "seconds" if kind == "latency" else "US dollars"
        raise ConfigError(f"{kind} needs a number of {unit} >= 0 as its value, got {value!r}")
    if kind == "regex":
        try:
            re.compile(str(value))
        except re.error as exc:
            raise ConfigError(f"regex {str(value)!r} is not a valid pattern: {exc}") from None
    if kind == "is-json" and value:
        try:
            jsonschema.validators.validator_for(value).check_schema(value)
        except (jsonschema.SchemaError, TypeError, AttributeError) as exc:
            raise ConfigError(f"is-json's value is not a valid JSON schema: {getattr(exc, 'message', exc)}") from None


def regex(output: str, value: Any, ctx: Context) -> Score:
    check_value("regex", value)
    ok = re.search(str(value), output) is not None
    return _binary(ok, f"{'matches' if ok else 'does not match'} /{value}/")


def starts_with(output: str, value: Any, ctx: Context) -> Score:
    ok = output.lstrip().startswith(str(value))
    return _binary(ok, f"{'starts' if ok else 'does not start'} with {str(value)[:60]!r}")


def _json_in(output: str) -> Any:
    text = output.strip()
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.S)
    return json.loads(fenced.group(1) if fenced else text)


def is_json(output: str, value: Any, ctx: Context) -> Score:
    """Valid JSON; with a value, also valid against that JSON schema."""
    try:
        data = _json_in(output)
    except ValueError as exc:
        return _binary(False, f"not JSON: {exc}")
    if value:
        try:
            jsonschema.validate(data, value)
        except jsonschema.ValidationError as exc:
            return _binary(False, f"JSON, but not valid against the schema: {exc.message}")
    return _binary(True, "valid JSON" + (" matching the schema" if value else ""))


def bleu(output: str, value: Any, ctx: Context) -> Score:
    """Sentence BLEU (sacrebleu, 0-100 scaled to 0-1) against one or more references."""
    import sacrebleu

    result = sacrebleu.sentence_bleu(output, _texts(value))
    return Score(result.score / 100.0, True, f"BLEU {result.score:.1f}")


class _UnicodeTokenizer:
    """Lower-cased word tokens in any script: rouge-score's default keeps only [a-z0-9]."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())


def rouge_scores(output: str, references: list[str]) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F-measure (best over references), from rouge-score."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], tokenizer=_UnicodeTokenizer())
    best: dict[str, float] = {}
    for reference in references:
        for name, value in scorer.score(reference, output).items():
            best[name] = max(best.get(name, 0.0), value.fmeasure)
    return best


def _rouge(kind: str) -> Callable[[str, Any, Context], Score]:
    def score(output: str, value: Any, ctx: Context) -> Score:
        result = rouge_scores(output, _texts(value))[kind]
        return Score(result, True, f"{kind} F1 {result:.3f}")
    score.__name__ = kind
    return score


def levenshtein(output: str, value: Any, ctx: Context) -> Score:
    """Normalised edit similarity in [0, 1] (rapidfuzz), 1 = identical."""
    from rapidfuzz.distance import Levenshtein

    similarity = Levenshtein.normalized_similarity(output.strip(), str(value).strip())
    distance = Levenshtein.distance(output.strip(), str(value).strip())
    return Score(similarity, True, f"edit distance {distance}, similarity {similarity:.3f}")


def latency(output: str, value: Any, ctx: Context) -> Score:
    check_value("latency", value)
    ok = ctx.latency_s <= float(value)
    return _binary(ok, f"{ctx.latency_s:.2f} s {'<=' if ok else '>'} {float(value):g} s")


def cost(output: str, value: Any, ctx: Context) -> Score:
    check_value("cost", value)
    if ctx.cost_usd is None:
        return _binary(False, "cost unknown for this model (no price)")
    ok = ctx.cost_usd <= float(value)
    return _binary(ok, f"${ctx.cost_usd:.6f} {'<=' if ok else '>'} ${float(value):g}")


def python(output: str, value: Any, ctx: Context) -> Score:
    """A user function ``file.py:name`` called as ``name(output, vars)``; it returns a bool,
    a number in [0, 1], or a dict {"score", "pass", "reason"}. It is the user's own code and
    runs in genlab's process (unlike evolved programs). What it raises, or a score it returns
    outside [0, 1] (NaN included), is a UserCodeError: that assertion's error on that row."""
    function = load_user_function(str(value), ctx.base_dir)
    try:
        result = function(output, ctx.vars)
    except Exception as exc:  # the user's bug, met on one output: that row's error, not a crash of the run
        source = getattr(getattr(function, "__code__", None), "co_filename", None)   # None: a callable object
        frames = traceback.extract_tb(exc.__traceback__)
        line = next((f" (line {f.lineno})" for f in reversed(frames) if f.filename == source), "")
        raise UserCodeError(f"{value} raised {type(exc).__name__}: {exc}{line}") from exc
    if isinstance(result, bool):
        return _binary(result, f"{value} returned {result}")
    score = result.get("score") if isinstance(result, dict) else result
    if isinstance(score, bool) or not isinstance(score, numbers.Real) or not 0 <= score <= 1:
        raise UserCodeError(f"{value} returned {result!r:.120}; return a bool, a number from 0 to 1, or "
                            "{'score': 0 to 1, 'pass': bool, 'reason': text}")
    if isinstance(result, dict):
        return Score(float(score), bool(result.get("pass", score > 0)), str(result.get("reason", "")))
    return Score(float(score), score > 0, f"{value} returned {result}")


def load_user_function(ref: str, base_dir: Path, what: str = "python assertion") -> Callable:
    path_text, _, name = ref.partition(":")
    path = (base_dir / path_text).resolve()
    if not name or not path.is_file():
        raise ConfigError(f"{what} {ref!r}: give FILE.py:FUNCTION with an existing file "
                          f"(looked for {path})")
    spec = importlib.util.spec_from_file_location(f"genlab_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:   # the user's file: a syntax error, an import it lacks…
        raise ConfigError(f"{what} {ref!r}: loading {path.name} raised {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, name, None)):
        raise ConfigError(f"{what} {ref!r}: {path.name} has no function {name}")
    return getattr(module, name)


ASSERTIONS: dict[str, Callable[[str, Any, Context], Score]] = {
    "equals": equals, "exact-match": equals, "contains": contains, "icontains": icontains,
    "contains-any": _contains_some(False, False), "contains-all": _contains_some(True, False),
    "icontains-any": _contains_some(False, True), "icontains-all": _contains_some(True, True),
    "regex": regex, "starts-with": starts_with,
    "is-json": is_json, "bleu": bleu, "rouge-1": _rouge("rouge1"), "rouge-2": _rouge("rouge2"),
    "rouge-l": _rouge("rougeL"), "rouge-lsum": _rouge("rougeLsum"), "levenshtein": levenshtein,
    "latency": latency, "cost": cost, "python": python,
}
#: Types whose score is a similarity: they pass when score >= threshold (default below).
SIMILARITY = {"bleu": 0.2, "rouge-1": 0.3, "rouge-2": 0.1, "rouge-l": 0.3, "rouge-lsum": 0.3, "levenshtein": 0.8}


def run_assertion(kind: str, output: str, value: Any, ctx: Context, threshold: float | None = None) -> Score:
    """Run one assertion by type name (``not-`` negates; similarity types use a threshold)."""
    negate = kind.startswith("not-")
    base = kind.removeprefix("not-")
    if base not in ASSERTIONS:
        raise ConfigError(f"unknown assertion type {kind!r}")
    score = ASSERTIONS[base](output, value, ctx)
    if base in SIMILARITY or threshold is not None and base == "python":
        limit = threshold if threshold is not None else SIMILARITY.get(base, 0.5)
        score = Score(score.score, score.score >= limit, f"{score.reason} (threshold {limit:g})")
    if negate:
        score = Score(1.0 - score.score, not score.passed, f"not: {score.reason}")
    return score


def corpus_bleu(outputs: list[str], references: list[list[str]]) -> float:
    """Corpus BLEU (sacrebleu) over outputs, each with its references."""
    import sacrebleu

    width = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(width)]
    return sacrebleu.corpus_bleu(outputs, streams).score
