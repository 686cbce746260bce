"""Score a candidate function: run it inside the spec's skeleton in the sandbox,
then score each returned solution here, with the spec's trusted score function."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from genlab.search.funsearch.code import Function
from genlab.search.funsearch.sandbox import Limits, Sandbox, require_isolation
from genlab.search.funsearch.spec import Spec


@dataclass
class Evaluation:
    """Per-input scores of one program, and why inputs failed."""

    scores: dict[str, float]                  # inputs that scored
    errors: dict[str, str] = field(default_factory=dict)   # input -> "kind: message"
    error_kind: str | None = None             # set when an input failed: the first failure's kind
    wall_s: float = 0.0
    protections: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """A program is kept only when it scores on every input.

        FunSearch keeps one that scores on any, and averages what it scored on; its inputs
        were one dataset each. Where inputs differ in size, a mean over some of them is not
        comparable: a body dividing by ``100 - item`` failed on every bin-packing instance
        holding an item of 100 and scored -53 on the one left, against Best Fit's -197.85
        over all twenty, and took over the search.
        """
        return bool(self.scores) and not self.errors

    @property
    def score(self) -> float | None:
        """Mean over the inputs (the reference code took the last input: a bug); None unless valid."""
        return sum(self.scores.values()) / len(self.scores) if self.valid else None


def top_level_imports(source: str) -> list[str]:
    """Return the modules a program imports at top level (preloaded in the sandbox)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


#: How the sandbox ends an exception's message: the line of the program that raised it.
PROGRAM_LINE = re.compile(r" \(line (\d+)\)$")


class Evaluator:
    """Evaluates functions for one spec on a fixed set of inputs."""

    def __init__(self, spec: Spec, limits: Limits | None = None, isolate: bool = True,
                 inputs: dict[str, Any] | None = None, sandbox: Sandbox | None = None,
                 unsafe_sandbox: bool = False):
        self.spec = spec
        self.inputs = inputs if inputs is not None else spec.inputs()
        self.sandbox = sandbox or Sandbox(limits, isolate=isolate)
        self.unsafe_sandbox = unsafe_sandbox  # run even where the sandbox cannot fully isolate
        self._isolation_checked = False
        self.preload = top_level_imports(spec.program_template)

    def evaluate(self, function: Function | str, inputs: dict[str, Any] | None = None) -> Evaluation:
        """Run and score ``function`` (the evolved function's full source)."""
        if not self._isolation_checked:  # fail closed before the first untrusted program runs
            require_isolation(self.sandbox, self.unsafe_sandbox)
            self._isolation_checked = True
        inputs = self.inputs if inputs is None else inputs
        program = self.spec.program(function)
        result = self.sandbox.run(program, self.spec.entry, inputs, preload=self.preload)
        scores: dict[str, float] = {}
        errors: dict[str, str] = {}
        first_kind = None
        for name, outcome in result.outcomes.items():
            if outcome.kind is None:
                try:
                    scores[name] = self.spec.score(inputs[name], outcome.solution)
                    continue
                except Exception as exc:  # the spec's checker rejected the solution
                    kind, message = "invalid", f"{type(exc).__name__}: {exc}"
            else:
                kind, message = outcome.kind, self._located(function, outcome.error or "")
            errors[name] = f"{kind}: {message}"[:300]
            first_kind = first_kind or kind
        return Evaluation(scores, errors, first_kind, result.wall_s, result.protections)

    def _located(self, function: Function | str, error: str) -> str:
        """The sandbox names a line of the whole program; say which line of the function it is."""
        return PROGRAM_LINE.sub(lambda m: f" ({self.spec.locate_line(function, int(m[1]))})", error)
