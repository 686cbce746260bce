"""Specifications: the one Python file that defines a program-search problem.

A spec marks its functions with decorators that genlab reads from the source
(the `funsearch` module does not need to exist; the decorators are removed before
any code runs):

    @funsearch.evolve   the function the model rewrites (exactly one)
    @funsearch.run      solve one input with the evolved function (runs in the sandbox)
    @funsearch.score    score(input, solution) -> float: checks the solution and scores
                        it (optional; runs in genlab's process, out of the candidate's reach.
                        Without it, the run function's return value is the score)
    @funsearch.inputs   inputs() -> {name: input}: the inputs to evolve on
    @funsearch.test_inputs   test_inputs() -> {dataset: {name: input}}: held-out sets (optional)
    @funsearch.metric   metric(inputs, scores) -> float: a dataset-level figure for reports,
                        named after the function, e.g. excess_bins_percent (optional)

The spec itself is trusted code (the user wrote it); only evolved functions are not.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from genlab.errors import SpecError
from genlab.io import read_text
from genlab.search.funsearch.code import Function, parse_function
from genlab.search.funsearch.grammar import GrammarConfig

ROLES = ("evolve", "run", "score", "inputs", "test_inputs", "metric")

#: Module-level names a spec may define, hidden from prompts: for reports,
#: BASELINES = {name: function source} and PUBLISHED = {name: {dataset: figure}};
#: for constrained sampling, GRAMMAR = {...} (see `genlab.search.funsearch.grammar.GrammarConfig`).
REPORTING_NAMES = ("BASELINES", "PUBLISHED", "GRAMMAR")

BUILTIN_SPECS = {
    "bin-packing": "bin_packing.py",
    "cap-set": "cap_set.py",
}


@dataclass
class Spec:
    """A parsed, loaded specification."""

    name: str
    path: str
    source: str
    roles: dict[str, str]             # role -> function name
    program_template: str             # source the sandbox runs, evolve function marked by a placeholder
    prompt_skeleton: str              # what the prompt shows besides the versioned functions
    seed_function: Function
    namespace: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def function_name(self) -> str:
        return self.roles["evolve"]

    @property
    def entry(self) -> str:
        return self.roles["run"]

    def program(self, function: Function | str) -> str:
        """Return the runnable program with ``function`` as the evolved function."""
        return self.program_template.replace(_PLACEHOLDER, str(function).rstrip() + "\n")

    def locate_line(self, function: Function | str, line: int) -> str:
        """Where line ``line`` of ``program(function)`` is, for a person: a line of the evolved
        function (as `evolve show` prints it), or the spec's own line that failed."""
        first = self.program_template[: self.program_template.index(_PLACEHOLDER)].count("\n") + 1
        if first <= line < first + len(str(function).rstrip().splitlines()):
            return f"line {line - first + 1} of {self.function_name}()"
        program = self.program(function).splitlines()
        if line > len(program):
            return f"line {line}"
        return f"the spec's line `{re.sub(r'  +#.*', '', program[line - 1]).strip()}`"   # its comment left out

    def inputs(self) -> dict[str, Any]:
        return self._call_dict("inputs")

    def seed_program(self, choice: str | None) -> Function:
        """Return the function a run starts from: the spec's own, or the body of one of its BASELINES.

        ``choice`` names a baseline loosely ("best-fit" finds "Best Fit"). The header and
        docstring stay the spec's, so prompts and the grammar read the same as from the spec's seed.
        """
        if choice is None:
            return self.seed_function
        baselines = self.namespace.get("BASELINES", {})
        wanted = _loose(choice)
        for name, code in baselines.items():
            if _loose(name) == wanted:
                return replace(self.seed_function, body=parse_function(code, self.function_name).body)
        names = ", ".join(_loose(n) for n in baselines) or "none (the spec defines no BASELINES)"
        raise SpecError(f"the {self.name} spec has no baseline '{choice}' to seed from; choose one of: {names}")

    def test_inputs(self) -> dict[str, dict[str, Any]]:
        return self._call_dict("test_inputs") if "test_inputs" in self.roles else {}

    def score(self, input_: Any, solution: Any) -> float:
        """Return the trusted score of a solution (raises ValueError when it is invalid)."""
        if "score" in self.roles:
            value = self.namespace[self.roles["score"]](input_, solution)
        else:
            value = solution
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"score must be a finite number, got {value!r:.80}")
        return float(value)

    def metric(self, inputs: dict[str, Any], scores: dict[str, float]) -> tuple[str, float] | None:
        """Return (name, value) of the spec's dataset-level metric, if it has one."""
        if "metric" not in self.roles:
            return None
        return self.roles["metric"], float(self.namespace[self.roles["metric"]](inputs, scores))

    def _call_dict(self, role: str) -> dict:
        try:
            value = self.namespace[self.roles[role]]()
        except Exception as exc:
            raise SpecError(f"{self.path}: {self.roles[role]}() raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(value, dict) or not value:
            raise SpecError(f"{self.path}: {self.roles[role]}() must return a non-empty dict of "
                            f"name -> input, got {type(value).__name__}")
        return value


_PLACEHOLDER = "# <genlab: evolved function>\n"


def _role(decorator: ast.expr) -> str | None:
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "funsearch":
        if node.attr not in ROLES:
            raise ValueError(f"unknown decorator @funsearch.{node.attr}; use one of "
                             + ", ".join(f"@funsearch.{r}" for r in ROLES))
        return node.attr
    return None


def _loose(name: str) -> str:
    return "-".join(name.lower().replace("_", " ").split())


def builtin_spec_path(name: str) -> Path:
    return Path(str(resources.files("genlab.search.funsearch.specs").joinpath(BUILTIN_SPECS[name])))


def load_spec(spec: str) -> Spec:
    """Load a built-in spec by name or a spec file by path, checking it completely."""
    if spec in BUILTIN_SPECS:
        path = builtin_spec_path(spec)
        name = spec
    else:
        path = Path(spec).expanduser()
        name = path.stem
        if not path.is_file():
            raise SpecError(f"no spec '{spec}': give a path to a spec file or one of: {', '.join(BUILTIN_SPECS)}")
    source = read_text(path, SpecError)
    return parse_spec(source, str(path), name)


def parse_spec(source: str, path: str = "<spec>", name: str = "spec") -> Spec:
    """Parse and load a spec's source (see the module docstring for the format)."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise SpecError(f"{path} line {exc.lineno}: syntax error: {exc.msg}; fix the spec file") from None
    lines = source.splitlines(keepends=True)
    roles: dict[str, str] = {}
    spans: dict[str, tuple[int, int]] = {}  # role -> (first line incl. decorators, last line), 1-based
    drop_lines: set[int] = set()            # decorator and `import funsearch` lines
    for node in tree.body:
        if isinstance(node, ast.Import) and any(a.name == "funsearch" for a in node.names):
            drop_lines.update(range(node.lineno, node.end_lineno + 1))
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            try:
                role = _role(decorator)
            except ValueError as exc:
                raise SpecError(f"{path} line {decorator.lineno}: {exc}") from None
            if role is None:
                continue
            if role in roles:
                raise SpecError(f"{path}: both {roles[role]}() and {node.name}() are marked "
                                f"@funsearch.{role}; mark exactly one")
            roles[role] = node.name
            spans[role] = (min(d.lineno for d in node.decorator_list), node.end_lineno)
            drop_lines.update(range(decorator.lineno, decorator.end_lineno + 1))
    for role, what in (("evolve", "the function to evolve"), ("run", "the function that solves one input"),
                       ("inputs", "a function returning the inputs")):
        if role not in roles:
            raise SpecError(f"{path} has no function marked @funsearch.{role}; mark {what} with it")

    # The program the sandbox runs: the spec without decorators, with a placeholder
    # where the evolved function goes.
    evolve_start, evolve_end = spans["evolve"]
    program_lines = []
    for number, line in enumerate(lines, start=1):
        if number == evolve_start:
            program_lines.append(_PLACEHOLDER)
        if evolve_start <= number <= evolve_end or number in drop_lines:
            continue
        program_lines.append(line)
    program_template = "".join(program_lines)

    # The prompt shows the skeleton the function runs in, not the evaluation plumbing
    # (the roles below, and the reporting-only names BASELINES and PUBLISHED).
    hidden = [spans[r] for r in ("evolve", "score", "inputs", "test_inputs", "metric") if r in spans]
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id in REPORTING_NAMES for t in targets):
            hidden.append((node.lineno, node.end_lineno))
            # A comment line directly above belongs to it.
            if node.lineno > 1 and lines[node.lineno - 2].lstrip().startswith("#"):
                hidden.append((node.lineno - 1, node.lineno - 1))
    skeleton = [line for number, line in enumerate(lines, start=1)
                if number not in drop_lines and not any(a <= number <= b for a, b in hidden)]
    prompt_skeleton = _squeeze_blank_lines("".join(skeleton))

    seed_source = "".join(lines[evolve_start - 1: evolve_end])
    seed_function = parse_function(seed_source, roles["evolve"])

    namespace: dict[str, Any] = {"__file__": path, "__name__": f"genlab_spec_{name.replace('-', '_')}"}
    clean = "".join(line for number, line in enumerate(lines, start=1) if number not in drop_lines)
    try:
        exec(compile(clean, path, "exec"), namespace)
    except Exception as exc:
        raise SpecError(f"{path}: loading the spec raised {type(exc).__name__}: {exc}") from exc
    spec = Spec(name, path, source, roles, program_template, prompt_skeleton, seed_function, namespace)
    spec.inputs()  # fail now, before any model call, when there are no inputs
    GrammarConfig.from_spec(namespace.get("GRAMMAR"), path)  # and when GRAMMAR is malformed
    return spec


def _squeeze_blank_lines(text: str) -> str:
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip() and len(out) >= 2 and not out[-1].strip() and not out[-2].strip():
            continue
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"

