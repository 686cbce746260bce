"""Evaluation suites in YAML: prompts x models x test cases, with assertions.

    description: One-sentence summaries
    prompts: ["Summarise in one sentence: {{text}}"]
    models: [local, {model: "http://127.0.0.1:8080/v1#qwen", label: qwen}]   # under test
    judge: local                         # the autorater's model, or {model, max_tokens, temperature,
                                         #   samples, seed, retries}
    options: {temperature: 0, max_tokens: 80}   # seed defaults to 0 so that a run repeats
    defaults:                            # applied to every test
      assert:
        - {type: rouge-l, value: "{{reference}}"}
        - {type: rubric, metric: summarization_quality, inputs: {context: "{{text}}"}}
    tests: data.jsonl                    # or an inline list of {vars: {...}, assert: [...]}; or a .csv
    compare: {baseline: local, metric: text_quality}   # pairwise, when several models run
    gate: {pass_rate: 0.9, summarization_quality: 3.5}  # what `genlab eval run` exits 0 on

Everything is checked before any model call; errors name the file, line and key.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genlab.errors import ConfigError, SuiteError  # noqa: F401  (SuiteError re-exported)
from genlab.io import read_csv, read_jsonl, read_text, validation_problems
from genlab.evaluate.autorater import VERDICT_TOKENS, JudgeSettings
from genlab.evaluate.builtin import pairwise_metric, pointwise_metric
from genlab.evaluate.metrics import ASSERTIONS, SIMILARITY, check_value, load_user_function

MODEL_GRADED = {"rubric"}
#: Values a suite may stand for once its aliases (*name) are expanded: nine nested aliases of
#: nine items each stand for 387 million, which filled 4 GB before the run failed.
MAX_SUITE_VALUES = 1_000_000
_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AssertionSpec(_Strict):
    type: str
    value: Any = None
    threshold: float | None = None
    weight: float = Field(1.0, ge=0)
    metric: str | dict | None = None       # for type: rubric (built-in name or a custom rubric)
    judge: str | None = None               # overrides the suite's judge model
    # What the judge sees besides the output and the rubric, as templates: the prompt (and the
    # test's reference) by default, plus these; an input set to null is left out, so
    # {prompt: null} shows the judge only the output and the rubric.
    inputs: dict[str, str | None] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known(cls, kind: str) -> str:
        base = kind.removeprefix("not-")
        if base not in ASSERTIONS and base not in MODEL_GRADED:
            raise ValueError(f"unknown assertion type {kind!r}; known: {', '.join([*ASSERTIONS, *MODEL_GRADED])}")
        return kind

    @model_validator(mode="after")
    def _value_fits_type(self) -> "AssertionSpec":
        """What can be checked before the run: a value that is there and can be used. A value
        with {{variables}} is known only per test, where the metric itself checks it."""
        base = self.type.removeprefix("not-")
        if self.threshold is not None and base not in {*SIMILARITY, "python", *MODEL_GRADED}:
            raise ValueError(f"{self.type} passes or fails, so a threshold means nothing here; drop it "
                             f"(thresholds are for {', '.join(SIMILARITY)}, python and rubric)")
        if base in MODEL_GRADED or isinstance(self.value, str) and _VAR.search(self.value):
            return self
        if self.value is None and base != "is-json":
            raise ValueError(f"{self.type} needs a value: what to compare the output with")
        try:
            check_value(base, self.value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self


class TestSpec(_Strict):
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    assertions: list[AssertionSpec] = Field(default_factory=list, alias="assert")


class Defaults(_Strict):
    vars: dict[str, Any] = Field(default_factory=dict)
    assertions: list[AssertionSpec] = Field(default_factory=list, alias="assert")


class CompareSpec(_Strict):
    baseline: str
    metric: str | dict = "text_quality"
    samples: int | None = Field(None, ge=1, le=9)     # verdicts per order; default the judge's
    inputs: dict[str, str] = Field(default_factory=dict)


class JudgeSpec(_Strict):
    """The suite's judge: a model spec, and how it is called (see `JudgeSettings`)."""

    model: str = "local"
    max_tokens: int = Field(VERDICT_TOKENS, ge=16)
    temperature: float | None = Field(None, ge=0, le=2)
    samples: int = Field(1, ge=1, le=9)
    seed: int | None = 0
    retries: int = Field(1, ge=0, le=5)

    def settings(self) -> JudgeSettings:
        return JudgeSettings(self.max_tokens, self.temperature, self.samples, self.seed, self.retries)


class ModelEntry(_Strict):
    model: str
    label: str = Field(min_length=1, max_length=40)


class SuiteSpec(_Strict):
    description: str = ""
    prompts: list[str] = Field(min_length=1)
    models: list[str | ModelEntry] = Field(default_factory=lambda: ["local"], min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)    # model spec -> short name in tables
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    options: dict[str, Any] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    tests: list[TestSpec] | str = Field(min_length=1)
    compare: CompareSpec | None = None
    gate: dict[str, float] | None = None
    concurrency: int = Field(4, ge=1, le=64)

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_shorthand(cls, judge: Any) -> Any:
        return {"model": judge} if isinstance(judge, str) else judge   # judge: SPEC

    @field_validator("models", mode="before")
    @classmethod
    def _model_entries(cls, models: Any) -> Any:
        items = models if isinstance(models, list) else []
        for item in items:
            if isinstance(item, dict) and set(item) != {"model", "label"}:
                raise ValueError("a model is a spec, or {model: SPEC, label: SHORT_NAME}")
        specs = [item.get("model") if isinstance(item, dict) else item for item in items]
        repeated = sorted({str(spec) for spec in specs if specs.count(spec) > 1})
        if repeated:   # rows are keyed by model: a second entry would silently merge into the first
            raise ValueError(f"{', '.join(repeated)} is listed more than once; a suite runs each model once, "
                             "so drop the repeat")
        return models

    @model_validator(mode="after")
    def _model_labels(self) -> "SuiteSpec":
        """A model given as ``{model: SPEC, label: NAME}`` is its spec, its label kept in ``labels``."""
        for i, item in enumerate(self.models):
            if isinstance(item, ModelEntry):
                self.labels[item.model] = item.label
                self.models[i] = item.model
        return self


def render(template: str, variables: dict[str, Any]) -> str:
    """Fill ``{{name}}`` placeholders (every one must have a value)."""
    return _VAR.sub(lambda m: str(variables[m.group(1)]), template)


def judge_inputs(assertion: AssertionSpec, prompt: str, variables: dict[str, Any]) -> dict[str, str]:
    """What a rubric's judge sees besides the output: the prompt, the test's reference when it
    has one, and the assertion's inputs rendered (an input set to null is left out)."""
    inputs = {"prompt": prompt, **({"reference": str(variables["reference"])} if "reference" in variables else {})}
    for name, template in assertion.inputs.items():
        if template is None:
            inputs.pop(name, None)
        else:
            inputs[name] = render(template, variables)
    return inputs


def placeholders(template: str) -> set[str]:
    return set(_VAR.findall(template))


class Suite:
    """A validated suite, with its test cases loaded."""

    def __init__(self, spec: SuiteSpec, path: Path, tests: list[TestSpec], source: str):
        self.spec, self.path, self.tests = spec, path, tests
        self.digest = hashlib.sha256(source.encode()).hexdigest()[:16]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def assertions_for(self, test: TestSpec) -> list[AssertionSpec]:
        return [*self.spec.defaults.assertions, *test.assertions]

    def variables(self, test: TestSpec) -> dict[str, Any]:
        return {**self.spec.defaults.vars, **test.vars}

    def label(self, model: str) -> str:
        """The short name a model goes by in tables: its ``label``, a URL spec's model name, or the spec."""
        if model in self.spec.labels:
            return self.spec.labels[model]
        if model.startswith(("http://", "https://")) and "#" in model:
            short = model.rpartition("#")[2]
            if sum(m.rpartition("#")[2] == short for m in self.spec.models) == 1:
                return short
        return model

    @property
    def options(self) -> dict[str, Any]:
        """The model-under-test's request options; seed 0 unless the suite says otherwise (null: unseeded)."""
        return {k: v for k, v in {"seed": 0, **self.spec.options}.items() if v is not None}


def _line(node: yaml.Node | None, path: tuple) -> int | None:
    """Return the 1-based line of the YAML node at ``path`` (as deep as it exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == key), None)
            if match is None:
                break
            node = match[1]
            line = match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _check_aliases(path: Path, root: yaml.Node | None) -> None:
    """Refuse an alias (*name) inside the value it names, and aliases that expand to more than
    `MAX_SUITE_VALUES` values ("billion laughs"): the composed nodes share each anchored value,
    so its expanded size is counted once per node, depth first without recursion."""
    def children(node: yaml.Node) -> list:
        if isinstance(node, yaml.MappingNode):
            return [part for pair in node.value for part in pair]
        return node.value if isinstance(node, yaml.SequenceNode) else []

    sizes: dict[int, int] = {}     # node id -> values it stands for, expanded
    entered: set[int] = set()      # nodes whose children are being counted
    stack = [root] if root is not None else []
    while stack:
        node = stack[-1]
        if id(node) in sizes:
            stack.pop()
        elif id(node) in entered:
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children(node))
            if sizes[id(node)] > MAX_SUITE_VALUES:
                raise SuiteError(f"{path} line {node.start_mark.line + 1}: its aliases (*name) expand to more than "
                                 f"{MAX_SUITE_VALUES:,} values; write the values out, or put the tests in a file")
            stack.pop()
        else:
            entered.add(id(node))
            for child in children(node):
                if id(child) in entered and id(child) not in sizes:   # an ancestor of this node
                    raise SuiteError(f"{path} line {child.start_mark.line + 1}: an alias (*name) inside the value it "
                                     "names stands for a value without end; remove it")
                stack.append(child)


def load_suite(path: str | Path, overrides: dict | None = None) -> Suite:
    """Read, validate and check a suite file; raise SuiteError naming file, line and key.

    ``overrides`` replace top-level keys (``genlab tune compare`` sets models and compare)
    before validation, so the result is checked like any suite and its digest differs."""
    path = Path(path)
    source = read_text(path, SuiteError)
    try:
        root = yaml.compose(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SuiteError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise SuiteError(f"{path}: lists or mappings nested too deeply to read; flatten them") from None
    _check_aliases(path, root)     # before the aliases are expanded into Python values
    data = yaml.safe_load(source)
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a mapping with prompts, models and tests")
    if overrides:
        data = {**data, **overrides}
        source += "\n# overrides: " + json.dumps(overrides, sort_keys=True)
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        key, message = validation_problems(exc, SuiteSpec)[0]
        loc = tuple(int(p) if p.isdigit() else p for p in key.split("."))
        line = _line(root, tuple("assert" if p == "assertions" else p for p in loc))
        raise SuiteError(f"{path} line {line}, key {key}: {message}") from None
    tests = _load_tests(spec, path, root)
    suite = Suite(spec, path, tests, source + json.dumps([t.model_dump(by_alias=True) for t in tests], default=str))
    try:
        _check(suite, root)
    except SuiteError:
        raise
    except ConfigError as exc:  # a bad metric name or model spec, found by the packages that own them
        raise SuiteError(f"{path}: {exc}") from None
    return suite


def expected_assertion(expected: str) -> dict[str, Any]:
    """A CSV row's ``__expected`` as promptfoo reads it: ``TYPE: VALUE`` where TYPE is an
    assertion type (``contains-any: red, blue`` names several values; ``rubric: fluency`` a
    metric), else the whole text as the exact answer (``4``, ``Answer: Paris``)."""
    kind, colon, value = expected.partition(":")
    kind, value = kind.strip(), value.strip()
    base = kind.removeprefix("not-")
    if kind in MODEL_GRADED:               # rubric: fluency, a built-in metric by name
        return {"type": kind, "metric": value}
    if not colon or base not in ASSERTIONS:
        return {"type": "equals", "value": expected}
    if base.endswith(("-any", "-all")):
        return {"type": kind, "value": [v.strip() for v in value.split(",")]}
    return {"type": kind, "value": value}


def _load_tests(spec: SuiteSpec, path: Path, root) -> list[TestSpec]:
    if isinstance(spec.tests, list):
        return spec.tests
    file = (path.parent / spec.tests).resolve()
    line = _line(root, ("tests",))
    if not file.is_file():
        raise SuiteError(f"{path} line {line}, key tests: no file {spec.tests}")
    rows: list[tuple[int, dict]] = []   # (line in the file, test)
    if file.suffix == ".jsonl":
        for number, row in read_jsonl(file, "tests file", error=SuiteError):
            rows.append((number, row if "vars" in row or "assert" in row else {"vars": row}))
    elif file.suffix == ".csv":
        for number, row in read_csv(file, "tests file", error=SuiteError):
            expected = row.pop("__expected", None)
            test: dict[str, Any] = {"vars": row}
            if expected:
                test["assert"] = [expected_assertion(expected)]
            rows.append((number, test))
    else:
        raise SuiteError(f"{path} line {line}, key tests: test files are .jsonl or .csv, not {file.suffix}")
    tests = []
    for number, row in rows:
        try:
            tests.append(TestSpec.model_validate(row))
        except ValidationError as exc:
            key, message = validation_problems(exc, TestSpec)[0]
            raise SuiteError(f"{file}:{number}, key {key}: {message}") from None
    if not tests:
        raise SuiteError(f"{file} has no test cases")
    return tests


def _check(suite: Suite, root) -> None:
    """Everything that can be known before a model call: variables, metrics, models, options."""
    from genlab.models import build_request, get_backend

    spec, path = suite.spec, suite.path
    checked: set[str] = set()       # python checks loaded already
    for number, test in enumerate(suite.tests):
        variables = suite.variables(test)
        for p, prompt in enumerate(spec.prompts):
            missing = placeholders(prompt) - set(variables)
            if missing:
                line = _line(root, ("tests", number)) if isinstance(spec.tests, list) else _line(root, ("tests",))
                raise SuiteError(f"{path} line {line}, key tests.{number}: no variable {sorted(missing)[0]!r} "
                                 f"for prompts.{p}; add it to the test's vars or defaults.vars")
        for a, assertion in enumerate(suite.assertions_for(test)):
            templates = [assertion.value] if isinstance(assertion.value, str) else []
            templates += [v for v in assertion.inputs.values() if v is not None]
            for template in templates:
                missing = placeholders(template) - set(variables)
                if missing:
                    raise SuiteError(f"{path}: test {number}, assertion {a} ({assertion.type}) uses "
                                     f"{{{{{sorted(missing)[0]}}}}}, which the test does not define")
            try:
                if isinstance(assertion.value, str) and assertion.type not in MODEL_GRADED:
                    check_value(assertion.type.removeprefix("not-"), render(assertion.value, variables))
                if assertion.type.removeprefix("not-") == "python" and \
                        (ref := render(str(assertion.value), variables)) not in checked:
                    load_user_function(ref, suite.base_dir)     # its file and function, before any model call
                    checked.add(ref)
            except ConfigError as exc:
                raise SuiteError(f"{path}: test {number}, assertion {a}: {exc}") from None
            if assertion.type in MODEL_GRADED:
                if assertion.metric is None:
                    raise SuiteError(f"{path}: test {number}, assertion {a}: type rubric needs a metric "
                                     "(a built-in name or a custom rubric)")
                metric = pointwise_metric(assertion.metric)
                given = judge_inputs(assertion, "", variables)
                missing_needs = [n for n in metric.needs if n not in given]
                if missing_needs:
                    raise SuiteError(f"{path}: metric {metric.name} needs {missing_needs[0]!r}; give it with "
                                     f"inputs: {{{missing_needs[0]}: \"{{{{var}}}}\"}} on the assertion")
                if assertion.threshold is not None and metric.best_score != metric.scale[1]:
                    # A score at or above the threshold would pass "far too long" before "just right".
                    raise SuiteError(f"{path}: test {number}, assertion {a}: {metric.name}'s best score, "
                                     f"{metric.best_score}, is inside its scale, so a threshold (pass at or above "
                                     "it) cannot say how close to it passes; drop it, or give a custom metric "
                                     "with a tolerance")
    if spec.compare:
        pairwise_metric(spec.compare.metric)
        if spec.compare.baseline not in spec.models or len(spec.models) < 2:
            raise SuiteError(f"{path} line {_line(root, ('compare', 'baseline'))}, key compare.baseline: the "
                             "baseline must be one of the suite's models, and compare needs two or more models")
    for spec_text in {*spec.models, spec.judge.model, *(a.judge for t in suite.tests
                                                        for a in suite.assertions_for(t) if a.judge)}:
        get_backend(spec_text)
    unknown_labels = sorted(set(spec.labels) - set(spec.models))
    if unknown_labels:
        raise SuiteError(f"{path} line {_line(root, ('labels',))}, key labels: {unknown_labels[0]!r} is not one "
                         "of the suite's models")
    try:
        build_request(messages=[{"role": "user", "content": "x"}], **suite.options)
    except ConfigError as exc:
        raise SuiteError(f"{path} line {_line(root, ('options',))}, key options: {exc}") from None
    if spec.gate:
        _check_gate(suite, root)


def gate_metrics(suite: Suite) -> dict[str, tuple[str, str]]:
    """Names a gate may use for a mean score, each mapped to the assertion type it reads and
    the scale it reads: "rubric" (its own, e.g. 1-5), "share" (0-1) or "closeness". A rubric
    whose best score is inside its scale (verbosity's 0 of -2..2) is read as closeness to that
    best, 0-1: on its own scale answers far too long would reach any bar, and a mean of "too
    short" and "too long" would be right."""
    names = {}
    for test in suite.tests:
        for assertion in suite.assertions_for(test):
            if assertion.type in MODEL_GRADED:
                metric = pointwise_metric(assertion.metric)
                kind = f"rubric:{metric.name}"
                scale = "rubric" if metric.best_score == metric.scale[1] else "closeness"
                names[metric.name] = names[kind] = (kind, scale)
            else:
                names[assertion.type] = (assertion.type, "share")
    return names


def _check_gate(suite: Suite, root) -> None:
    known = gate_metrics(suite)
    for key, value in suite.spec.gate.items():
        where = f"{suite.path} line {_line(root, ('gate', key))}, key gate.{key}"
        if key == "pass_rate":
            if not 0 <= value <= 1:
                raise SuiteError(f"{where}: a pass rate is a share between 0 and 1, e.g. 0.9")
        elif key not in known:
            raise SuiteError(f"{where}: the suite has no assertion {key!r}; a gate takes pass_rate or one of: "
                             f"{', '.join(sorted(known))}")
        elif known[key][1] == "closeness" and not 0 < value <= 1:
            raise SuiteError(f"{where}: {key}'s best score is inside its scale, so its gate is how close the "
                             "answers came to it, from 0 to 1 (1: every one at the best); give e.g. 0.75")
