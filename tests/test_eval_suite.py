"""Bad suites are refused before any model call, naming the file, line and key."""

import pytest

from genlab.evaluate.suite import SuiteError, load_suite

GOOD = """description: t
prompts: ["Say {{word}}"]
models: [local]
tests:
  - vars: {word: hi}
    assert:
      - {type: contains, value: hi}
"""


def error(tmp_path, text: str) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    return str(info.value)


def test_good_suite_loads(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(GOOD)
    suite = load_suite(path)
    assert len(suite.tests) == 1 and suite.spec.models == ["local"]


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("type: contains", "type: containz"), "line 7, key tests.0.assert.0.type: unknown assertion type 'containz'"),
    (GOOD.replace("{word: hi}", "{other: hi}"), "line 5, key tests.0: no variable 'word' for prompts.0"),
    (GOOD.replace('prompts: ["Say {{word}}"]', "prompts: 12"), "line 2, key prompts: Input should be a valid list"),
    (GOOD + "concurrency: lots\n", "key concurrency: Input should be a valid integer"),
    (GOOD + "colour: blue\n", "key colour: Extra inputs are not permitted"),
    (GOOD.replace("models: [local]", "models: [nope:x]"), "unknown model spec 'nope:x'"),
    (GOOD + "options: {temperature: 9}\n", "key options: invalid request: temperature"),
    ("prompts: [oops\n", "not valid YAML"),
    (GOOD.replace("value: hi}", "value: hi}\n      - {type: rubric}"), "type rubric needs a metric"),
    (GOOD.replace("value: hi}", "value: hi}\n      - {type: rubric, metric: groundedness}"), "metric groundedness needs 'context'"),
    (GOOD.replace("value: hi}", "value: hi}\n      - {type: rubric, metric: charm}"), "unknown metric 'charm'"),
    (GOOD.replace("tests:\n  - vars: {word: hi}\n    assert:\n      - {type: contains, value: hi}\n", "tests: missing.jsonl\n"),
     "key tests: no file missing.jsonl"),
    (GOOD + "compare: {baseline: local}\n", "compare needs two or more models"),
])
def test_bad_suites(tmp_path, text, message):
    assert message in error(tmp_path, text)


def test_errors_name_the_file(tmp_path):
    assert error(tmp_path, "prompts: [oops\n").startswith(str(tmp_path / "suite.yaml"))


def test_tests_from_csv_and_jsonl(tmp_path):
    (tmp_path / "cases.csv").write_text("word,__expected\nhi,contains: hi\nyo,icontains: YO\n")
    path = tmp_path / "suite.yaml"
    path.write_text('prompts: ["Say {{word}}"]\ntests: cases.csv\n')
    suite = load_suite(path)
    assert [t.vars["word"] for t in suite.tests] == ["hi", "yo"]
    assert suite.tests[1].assertions[0].type == "icontains"
    (tmp_path / "cases.jsonl").write_text('{"word": "hi"}\n{"vars": {"word": "yo"}, "assert": [{"type": "contains", "value": "yo"}]}\n')
    path.write_text('prompts: ["Say {{word}}"]\ntests: cases.jsonl\n')
    assert len(load_suite(path).tests) == 2


def test_overrides_are_validated_like_the_file(tmp_path):
    """genlab tune compare replaces a suite's models; the result is checked and has its own digest."""
    path = tmp_path / "suite.yaml"
    path.write_text(GOOD)
    plain = load_suite(path)
    compared = load_suite(path, {"models": ["local", "http://127.0.0.1:9/v1#m"], "compare": {"baseline": "local"}})
    assert compared.spec.models == ["local", "http://127.0.0.1:9/v1#m"] and compared.digest != plain.digest
    with pytest.raises(SuiteError, match="unknown model spec 'nope:x'"):
        load_suite(path, {"models": ["local", "nope:x"], "compare": {"baseline": "local"}})
