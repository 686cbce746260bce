"""Tune a program's numeric literals on the spec's training inputs.

A small model writes the right structure with the wrong constants: "the tightest bin if
the item fills one to within a few units, else the first bin" came out of runs as
`exp(-41.35 * gap)`, whose threshold is wherever float64 underflows. The model cannot
search constants, and a sandbox can, cheaply: draw variants that multiply every literal
by its own factor exp(N(0, sigma)), score each on the training inputs, keep the best.
LLM-SR fits an equation's parameters after the LLM writes its skeleton in the same spirit.
The held-out sets are never read here; bench/evolve_constants.py measures what it changes.
"""

from __future__ import annotations

import ast
import math
import random
from dataclasses import dataclass
from typing import Callable

from genlab.search.funsearch.evaluator import Evaluation, Evaluator

VARIANTS = 16
SIGMA = 0.5
SIGNIFICANT_DIGITS = 4  # enough for a threshold, short enough to read


@dataclass(frozen=True)
class Tuned:
    code: str
    evaluation: Evaluation     # of ``code`` on the training inputs
    seed_score: float | None   # of the program as given (None: it fails on some input)
    literals: int              # numeric literals that were varied
    variants: int              # variants scored

    @property
    def score(self) -> float | None:
        return self.evaluation.score


class _ScaleLiterals(ast.NodeTransformer):
    def __init__(self, rng: random.Random, sigma: float):
        self.rng, self.sigma = rng, sigma

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if not _is_literal(node):
            return node
        scaled = float(f"{node.value * math.exp(self.rng.gauss(0.0, self.sigma)):.{SIGNIFICANT_DIGITS}g}")
        return ast.copy_location(ast.Constant(scaled), node)


def _is_literal(node: ast.AST) -> bool:
    # bool is an int subclass; 0 scales to 0, so it is left out.
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value != 0


def count_literals(code: str) -> int:
    return sum(_is_literal(node) for node in ast.walk(ast.parse(code)))


def scale_literals(code: str, rng: random.Random, sigma: float = SIGMA) -> str:
    """``code`` with every int or float literal but 0 multiplied by its own factor exp(N(0, sigma))."""
    return ast.unparse(_ScaleLiterals(rng, sigma).visit(ast.parse(code)))


def tune_constants(code: str, evaluator: Evaluator, variants: int = VARIANTS, sigma: float = SIGMA,
                   seed: int = 0, on_variant: Callable[[int, float | None], None] | None = None,
                   given: Evaluation | None = None) -> Tuned:
    """The best of ``code`` (whose evaluation is ``given``, when known) and ``variants``
    variants of it on the training inputs. A variant must score on every input to count, as
    a sample must to be kept."""
    literals = count_literals(code)
    given = given or evaluator.evaluate(code)
    best_code, best = code, given
    if literals:
        rng = random.Random(f"{seed}:{code}")
        for i in range(variants):
            variant = scale_literals(code, rng, sigma)
            evaluation = evaluator.evaluate(variant)
            if evaluation.valid and (best.score is None or evaluation.score > best.score):
                best_code, best = variant, evaluation
            if on_variant:
                on_variant(i + 1, best.score)
    return Tuned(best_code, best, given.score, literals, variants if literals else 0)
