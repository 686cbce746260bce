"""Bad suites are refused before any model call, naming the file, line and key."""

import pytest

from genlab.evaluate.suite import SuiteError, expected_assertion, load_suite

GOOD = """description: t
prompts: ["Say {{word}}"]
models: [local]
tests:
  - vars: {word: hi}
    assert:
      - {type: contains, value: hi}
"""


#: A rubric assertion with a custom metric, for the cases that break its rubric.
CUSTOM = "value: hi}\n      - {type: rubric, metric: {name: brevity, criteria: {short: brief}, rubric: RUBRIC}}"


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
    (GOOD + "colour: blue\n", "key colour: unknown key; the keys here are description, prompts, models, labels"),
    (GOOD.replace("prompts:", "prompt:"),      # was "key prompts: Field required", the key it missed
     "line 2, key prompt: unknown key (did you mean prompts?); the keys here are description, prompts"),
    (GOOD.replace("models:", "providers:"),
     "line 3, key providers: unknown key; the keys here are description, prompts"),
    (GOOD.replace("value: hi", "vaule: hi"), "line 7, key tests.0.assert.0.vaule: unknown key (did you mean value?); "
     "the keys here are type, value, threshold"),
    (GOOD.replace("models: [local]", "models: [nope:x]"), "unknown model spec 'nope:x'"),
    (GOOD + "options: {temperature: 9}\n", "key options: invalid request: temperature"),
    ("prompts: [oops\n", "not valid YAML"),
    (GOOD.replace("value: hi}", "value: hi}\n      - {type: rubric}"), "type rubric needs a metric"),
    (GOOD.replace("value: hi}", "value: hi}\n      - {type: rubric, metric: groundedness}"), "metric groundedness needs 'context'"),
    (GOOD.replace("value: hi}", "value: hi}\n      - {type: rubric, metric: charm}"), "unknown metric 'charm'"),
    *[(GOOD.replace("value: hi}", CUSTOM.replace("rubric: RUBRIC", rubric)), message) for rubric, message in [
        ("rubric: {5: short, 1: long}, best: 9", "/suite.yaml: metric brevity: best 9 is not one of its rubric's scores (1…5)"),
        ("rubric: {5: short, 1: long}, pass_score: 7", "metric brevity: pass_score 7 is outside its rubric's scale (1…5)"),
        ("rubric: {1: long, 0: right, -1: short}, best: 0, pass_score: 1",
         "pass_score counts up to the top of the scale, but its best is 0; with the best inside the scale, give tolerance"),
        ("rubric: {5: short, 1: long}, tolerance: two", "metric brevity: tolerance must be a whole number, got 'two'"),
        ("rubric: {5: short}", "metric brevity: a rubric needs at least two scores"),
        ("rubric: {five: short, 1: long}", "a custom metric needs criteria (name: text) and a rubric (integer score: text)")]],
    (GOOD.replace("value: hi}", CUSTOM.replace("{short: brief}", "{}").replace("RUBRIC", "{5: a, 1: b}")),
     "metric brevity has no criteria; give at least one"),
    (GOOD.replace("tests:\n  - vars: {word: hi}\n    assert:\n      - {type: contains, value: hi}\n", "tests: missing.jsonl\n"),
     "key tests: no file missing.jsonl"),
    (GOOD + "compare: {baseline: local}\n", "compare needs two or more models"),
    (GOOD + "gate: {pass_rate: 90}\n", "line 8, key gate.pass_rate: a pass rate is a share between 0 and 1"),
    (GOOD + "gate: {rouge-l: 0.3}\n", "key gate.rouge-l: the suite has no assertion 'rouge-l'; a gate takes "
     "pass_rate or one of: contains"),
    (GOOD.replace("value: hi}", "value: hi}\n      - {type: rubric, metric: verbosity, threshold: 0}"),
     "test 0, assertion 1: verbosity's best score, 0, is inside its scale, so a threshold (pass at or above it) "
     "cannot say how close to it passes; drop it, or give a custom metric with a tolerance"),
    (GOOD.replace("value: hi}", "value: hi}\n      - {type: rubric, metric: verbosity}") + "gate: {verbosity: 0}\n",
     "key gate.verbosity: verbosity's best score is inside its scale, so its gate is how close the answers came "
     "to it, from 0 to 1 (1: every one at the best); give e.g. 0.75"),
    (GOOD + "judge: {model: local, max_tokens: 2}\n", "key judge.max_tokens: Input should be greater than or equal to 16"),
    (GOOD + "judge: {modle: local}\n", "key judge.modle: unknown key (did you mean model?); the keys here are model, "
     "max_tokens"),
    (GOOD.replace("models: [local]", "models: [{model: local}]"), "line 3, key models: a model is a spec, or {model: SPEC, label: SHORT_NAME}"),
    (GOOD.replace("models: [local]", "models: [{model: local, label: a}, {model: local, label: b}]"),
     "line 3, key models: local is listed more than once; a suite runs each model once, so drop the repeat"),
    (GOOD + "labels: {other: x}\n", "key labels: 'other' is not one of the suite's models"),
    (GOOD.replace("{type: contains, value: hi}", "{type: rouge-l}"),
     "line 7, key tests.0.assert.0: rouge-l needs a value: what to compare the output with"),
    (GOOD.replace("{type: contains, value: hi}", "{type: contains, value: hi, threshold: 0.5}"),
     "contains passes or fails, so a threshold means nothing here; drop it"),
    (GOOD.replace("{type: contains, value: hi}", "{type: latency, value: soon}"),
     "latency needs a number of seconds >= 0 as its value, got 'soon'"),
    (GOOD.replace("{type: contains, value: hi}", "{type: not-regex, value: '(['}"), "regex '([' is not a valid pattern"),
    (GOOD.replace("{type: contains, value: hi}", "{type: is-json, value: {type: objectx}}"),
     "is-json's value is not a valid JSON schema"),
    (GOOD.replace("{type: contains, value: hi}", "{type: cost, value: '{{word}}'}"),
     "test 0, assertion 0: cost needs a number of US dollars >= 0 as its value, got 'hi'"),
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


def test_a_csv_field_may_be_longer_than_pythons_default_limit(tmp_path):
    """A 200,000-character document was refused as "not valid CSV (field larger than field limit)"."""
    document = "The ferry leaves at nine. " * 8000
    (tmp_path / "cases.csv").write_text(f'text,__expected\n"{document}",contains: ferry\n')
    path = tmp_path / "suite.yaml"
    path.write_text('prompts: ["Summarise: {{text}}"]\ntests: cases.csv\n')
    assert load_suite(path).tests[0].vars["text"] == document


@pytest.mark.parametrize("expected, assertion", [
    ("contains: hi", {"type": "contains", "value": "hi"}),
    ("not-icontains:Error", {"type": "not-icontains", "value": "Error"}),
    ("icontains-any: red, blue", {"type": "icontains-any", "value": ["red", "blue"]}),
    ("rubric: fluency", {"type": "rubric", "metric": "fluency"}),   # was an exact-answer check that always failed
    ("4", {"type": "equals", "value": "4"}),                      # no type: the exact answer
    ("Answer: Paris", {"type": "equals", "value": "Answer: Paris"}),
])
def test_a_csv_expected_column_reads_as_promptfoo_reads_it(expected, assertion):
    """A bare answer was refused as "unknown assertion type '4'"."""
    assert expected_assertion(expected) == assertion


@pytest.mark.parametrize("data, message", [
    (b'word,__expected\nhi,contains: hi\n"unclosed,x\n', "cases.csv:3: not valid CSV"),
    (b"word\nhi, there\n", 'cases.csv:2: 2 fields where the header names 1 column; put a field that holds a comma in double quotes'),
    (b"word,other\nhi\n", "cases.csv:2: 1 field where the header names 2 columns; give every column a field"),
    (b"word\ncaf\xe9\n", "cases.csv is not UTF-8 text (byte 8)"),
    (b"", "cases.csv: the tests file is empty; its first line names the columns"),
    (b"word\n", "cases.csv has no test cases"),
])
def test_bad_csv_test_files_name_the_line_and_the_fix(tmp_path, data, message):
    """Python's reader would take the rest of the file into an unclosed quote, and pad a short
    row with None; a file that is not UTF-8 raised a traceback."""
    (tmp_path / "cases.csv").write_bytes(data)
    assert message in error(tmp_path, 'prompts: ["Say {{word}}"]\ntests: cases.csv\n')


def test_a_bad_jsonl_test_names_its_line(tmp_path):
    (tmp_path / "cases.jsonl").write_text('{"word": "hi"}\n\n{"vars": 5}\n')
    assert "cases.jsonl:3, key vars: Input should be a valid dictionary" in \
        error(tmp_path, 'prompts: ["Say {{word}}"]\ntests: cases.jsonl\n')


def test_overrides_are_validated_like_the_file(tmp_path):
    """genlab tune compare replaces a suite's models; the result is checked and has its own digest."""
    path = tmp_path / "suite.yaml"
    path.write_text(GOOD)
    plain = load_suite(path)
    compared = load_suite(path, {"models": ["local", "http://127.0.0.1:9/v1#m"], "compare": {"baseline": "local"}})
    assert compared.spec.models == ["local", "http://127.0.0.1:9/v1#m"] and compared.digest != plain.digest
    with pytest.raises(SuiteError, match="unknown model spec 'nope:x'"):
        load_suite(path, {"models": ["local", "nope:x"], "compare": {"baseline": "local"}})


def test_judge_labels_gate_and_inputs(tmp_path):
    """The long forms: a judge with its call settings, a model with a short label, a gate on a
    rubric's own scale, and a rubric that shows the judge only the output."""
    path = tmp_path / "suite.yaml"
    path.write_text(GOOD.replace("models: [local]", 'models: [local, {model: "http://127.0.0.1:9/v1#qwen-7b", '
                                 'label: qwen}, "http://127.0.0.1:9/v1#phi"]')
                    .replace("value: hi}", "value: hi}\n      - {type: rubric, metric: fluency, inputs: {prompt: null}}")
                    + "judge: {model: local, max_tokens: 200, samples: 3, seed: 7}\n"
                    + "gate: {pass_rate: 0.5, fluency: 3.5}\n")
    suite = load_suite(path)
    assert suite.spec.models == ["local", "http://127.0.0.1:9/v1#qwen-7b", "http://127.0.0.1:9/v1#phi"]
    assert [suite.label(m) for m in suite.spec.models] == ["local", "qwen", "phi"]
    settings = suite.spec.judge.settings()
    assert (settings.max_tokens, settings.samples, settings.retries) == (200, 3, 1)
    assert settings.call_options(0) == {"n": 3, "temperature": 0.7, "max_tokens": 200, "seed": 7}
    assert settings.call_options(1)["seed"] == 1007      # a retry asks for another verdict
    assert suite.options == {"seed": 0}                   # seeded unless the suite says seed: null
    assert suite.tests[0].assertions[1].inputs == {"prompt": None}
    plain = tmp_path / "plain.yaml"
    plain.write_text(GOOD + "judge: ollama:qwen3\noptions: {seed: null, temperature: 0.5}\n")
    suite = load_suite(plain)
    assert suite.spec.judge.model == "ollama:qwen3" and suite.options == {"temperature": 0.5}


def _nested_aliases(levels: int) -> str:
    """Aliases nine wide and ``levels`` deep: 9 ** (levels + 1) values once expanded."""
    lines = ['    a0: &a0 [x, x, x, x, x, x, x, x, x]']
    lines += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return GOOD + "defaults:\n  vars:\n" + "\n".join(lines) + "\n"


def test_aliases_that_expand_beyond_any_suite_are_refused_before_they_are_expanded(tmp_path):
    """Nine levels stood for 387 million values and filled 4 GB before `genlab eval run` failed."""
    message = error(tmp_path, _nested_aliases(8))
    assert "line 16: its aliases (*name) expand to more than 1,000,000 values" in message
    path = tmp_path / "shared.yaml"
    path.write_text(_nested_aliases(3))           # shared values, 6,561 of them: an ordinary suite
    assert len(load_suite(path).spec.defaults.vars["a3"]) == 9


@pytest.mark.parametrize("text, message", [
    (GOOD + "defaults:\n  vars:\n    loop: &loop [*loop]\n", "line 10: an alias (*name) inside the value it names"),
    (GOOD + "defaults:\n  vars:\n    deep: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply to read; flatten"),
])
def test_a_suite_that_cannot_be_data_is_refused_by_name(tmp_path, text, message):
    """Each of these ended in a traceback (a circular reference, a RecursionError)."""
    assert message in error(tmp_path, text)
