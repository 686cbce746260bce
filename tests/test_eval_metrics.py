"""Reference metrics equal the libraries' own figures; every assertion type passes and fails."""

import re

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from genlab.errors import ConfigError, UserCodeError
from genlab.evaluate.metrics import Context, corpus_bleu, rouge_scores, run_assertion

CTX = Context(vars={"x": 1}, latency_s=1.5, cost_usd=0.002)
HYP = "the cat sat on the mat today"
REF = "the cat was sitting on the mat"


def test_bleu_equals_sacrebleu():
    score = run_assertion("bleu", HYP, REF, CTX)
    assert score.score == pytest.approx(sacrebleu.sentence_bleu(HYP, [REF]).score / 100)
    outputs, refs = [HYP, "a dog barks"], [[REF], ["the dog barks loudly"]]
    assert corpus_bleu(outputs, refs) == pytest.approx(sacrebleu.corpus_bleu(outputs, [[REF, "the dog barks loudly"]]).score)


def test_rouge_equals_rouge_score_on_latin_text():
    ours = rouge_scores(HYP, [REF])
    theirs = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"]).score(REF, HYP)
    for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert ours[name] == pytest.approx(theirs[name].fmeasure)


def test_rouge_does_not_zero_non_latin_text():
    text = "東京 は 日本 の 首都 です"
    default = rouge_scorer.RougeScorer(["rouge1"]).score(text, text)["rouge1"].fmeasure
    assert default == 0.0 and rouge_scores(text, [text])["rouge1"] == pytest.approx(1.0)
    assert run_assertion("rouge-l", "Москва столица России", "Москва — столица России", CTX).score == pytest.approx(1.0)


@pytest.mark.parametrize("kind, value, good, bad", [
    ("equals", "Paris", " Paris ", "paris"),
    ("contains", "cat", "a cat", "a dog"),
    ("icontains", "CAT", "a cat", "a dog"),
    ("contains-any", ["cat", "dog"], "a dog", "a cow"),
    ("contains-all", ["cat", "dog"], "cat and dog", "cat only"),
    ("contains-any", ["red", "blue"], "Red or blue", "Red or Blue"),
    ("icontains-any", ["red", "blue"], "A colour is: Red", "green"),
    ("icontains-all", ["CAT", "dog"], "Cat and DOG", "cat only"),
    ("regex", r"\d{3}", "code 123", "code 12"),
    ("starts-with", "Yes", "Yes, indeed", "No, yes"),
    ("is-json", None, '{"a": 1}', "{a: 1}"),
    ("is-json", {"type": "object", "required": ["a"]}, '```json\n{"a": 1}\n```', '{"b": 1}'),
    ("rouge-l", REF, REF, "completely different words here"),
    ("bleu", REF, REF, "nothing alike at all"),
    ("levenshtein", "kitten", "kitten", "sitting"),
    ("latency", 2, "x", None),
    ("cost", 0.01, "x", None),
    ("not-contains", "error", "all good", "an error happened"),
])
def test_every_assertion_passes_and_fails(kind, value, good, bad):
    assert run_assertion(kind, good, value, CTX).passed
    if bad is not None:
        assert not run_assertion(kind, bad, value, CTX).passed
    else:
        tight = 1 if kind == "latency" else 0.001
        assert not run_assertion(kind, "x", tight, CTX).passed


def test_contains_reasons_name_what_was_looked_for():
    assert run_assertion("contains-any", "A colour is: Red", ["red", "blue"], CTX).reason == "none of ['red', 'blue'] found"
    assert run_assertion("icontains-all", "Red", ["red", "blue"], CTX).reason == "missing ['blue'] (any case)"


def test_python_assertion(tmp_path):
    (tmp_path / "checks.py").write_text("def short(output, vars):\n    return len(output) < 10\n"
                                        "def graded(output, vars):\n    return {'score': 0.3, 'pass': False, 'reason': 'meh'}\n")
    ctx = Context(vars={}, base_dir=tmp_path)
    assert run_assertion("python", "tiny", "checks.py:short", ctx).passed
    assert not run_assertion("python", "far too long an output", "checks.py:short", ctx).passed
    graded = run_assertion("python", "x", "checks.py:graded", ctx)
    assert (graded.score, graded.passed, graded.reason) == (0.3, False, "meh")
    with pytest.raises(ConfigError, match="has no function nope"):
        run_assertion("python", "x", "checks.py:nope", ctx)
    (tmp_path / "buggy.py").write_text("def boom(output, vars):\n    return 1 / 0\ndef nan(output, vars):\n"
                                       "    return float('nan')\ndef seven(output, vars):\n    return {'score': 7}\n")
    with pytest.raises(UserCodeError, match=r"^buggy.py:boom raised ZeroDivisionError: division by zero \(line 2\)$"):
        run_assertion("python", "x", "buggy.py:boom", ctx)
    for name, returned in [("nan", "nan"), ("seven", "{'score': 7}")]:      # a traceback, and a gate that held
        with pytest.raises(UserCodeError, match=rf"^buggy.py:{name} returned {re.escape(returned)}; return a bool, "
                                                 "a number from 0 to 1"):
            run_assertion("python", "x", f"buggy.py:{name}", ctx)
    (tmp_path / "broken.py").write_text("def short(output, vars:\n")   # a traceback before
    with pytest.raises(ConfigError, match=r"python assertion 'broken.py:short': loading broken.py raised "
                                          r"SyntaxError: '\(' was never closed"):
        run_assertion("python", "x", "broken.py:short", ctx)


def test_levenshtein_threshold_and_unknown_types():
    assert run_assertion("levenshtein", "kitten", "sitting", CTX, threshold=0.5).passed
    with pytest.raises(ConfigError, match="unknown assertion type 'vibes'"):
        run_assertion("vibes", "x", None, CTX)


def test_a_metric_whose_best_score_is_in_the_middle():
    from genlab.evaluate.builtin import POINTWISE

    verbosity = POINTWISE["verbosity"]  # -2 far too short … 0 just right … 2 far too long
    assert [verbosity.passes(s) for s in (-2, -1, 0, 1, 2)] == [False, False, True, False, False]
    assert [verbosity.normalized(s) for s in (-2, -1, 0, 1, 2)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    coherence = POINTWISE["coherence"]  # 1..5, best at the top, unchanged
    assert [coherence.passes(s) for s in (1, 2, 3, 4, 5)] == [False, False, True, True, True]
    assert coherence.normalized(5) == 1.0 and coherence.normalized(1) == 0.0


def test_a_custom_metric_from_a_suite_keeps_its_own_scale():
    from genlab.evaluate.builtin import pointwise_metric

    length = pointwise_metric({"name": "length", "criteria": {"length": "Is the reply as long as asked?"},
                               "rubric": {2: "too long", 1: "long", 0: "right", -1: "short", -2: "too short"},
                               "best": 0, "tolerance": 1})
    assert [length.passes(s) for s in (-2, -1, 0, 1, 2)] == [False, True, True, True, False]
    strict = pointwise_metric({"criteria": {"tone": "Polite?"}, "rubric": {1: "rude", 2: "curt", 3: "polite"},
                               "pass_score": 3})
    assert [strict.passes(s) for s in (1, 2, 3)] == [False, False, True] and strict.normalized(2) == 0.5
