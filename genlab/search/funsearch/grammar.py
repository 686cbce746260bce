"""A GBNF grammar for the body of the evolved function, built from the spec.

A small model asked to continue ``def priority_v2(item, bins):`` mostly writes
something that is not a body: another function under another name, a call to a
helper that does not exist, or half a line. Under a grammar every sample is a
body in a small Python subset, so every sample parses and the search spends its
budget on scoring programs instead of discarding text. The grammar shapes syntax
only: samples still run in the sandbox and are scored as before.

The subset, all of it derived from the spec:

    body       ``min_statements`` to ``max_statements`` statements, then a return (or an if-chain)
    statement  NAME = expr  |  NAME += expr  (and -=, *=), NAME one of ``locals``
    if-chain   if cond: return expr  [elif cond: return expr]…  [else: return expr | return expr]
    expr       + - * / over terms; a term is a parameter, a local assigned earlier in the
               body, a number, (expr), f(expr), g(expr, expr), np.where(cond, expr, expr),
               optionally ** 2, ** 3 or ** 0.5
    cond       expr < > <= >= == != expr; in an if-chain both sides are scalars (see below)

An ``if`` needs one truth value, and a comparison of arrays has none (numpy refuses
``if bins > item:``, which was how 112 of 120 failed constrained samples of the
embedded model failed).
So where a parameter is annotated as something other than a number (``bins: np.ndarray``,
``el: tuple``), an if-chain's conditions compare scalars only: numbers, the parameters
annotated or left as numbers, element-wise functions of these, and reductions
(``np.max(bins)``) of any expression. Locals may hold arrays, so they are left out of
those conditions; ``np.where`` takes array conditions as before.

Only names that exist can be written: the evolved function's parameters, the locals
assigned by earlier statements (the grammar tracks which, so a sample never reads a
name before assigning it), and the functions of the modules the spec imports.
Nesting has explicit levels rather than free recursion: an ambiguous recursive
grammar can stall llama.cpp's sampler on one sample for minutes.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import ConfigError

#: Functions offered per module (by the module's real name; the prompt shows its alias).
#: Element-wise functions keep an array an array; the reductions (max, min, mean, sum)
#: give a scalar that broadcasts, e.g. ``bins / np.max(bins)``.
DEFAULT_FUNCTIONS: dict[str, dict[str, int]] = {
    "numpy": {"log": 1, "log1p": 1, "exp": 1, "sqrt": 1, "abs": 1, "square": 1, "tanh": 1, "sign": 1,
              "floor": 1, "ceil": 1, "max": 1, "min": 1, "mean": 1, "sum": 1,
              "minimum": 2, "maximum": 2, "mod": 2},
    "math": {"log": 1, "exp": 1, "sqrt": 1, "fabs": 1, "floor": 1, "ceil": 1, "tanh": 1},
}
#: Names the body may assign. Short and common, so a small model picks them readily.
DEFAULT_LOCALS = ("score", "gap", "fit", "ratio")
#: The numpy functions that reduce an array to a scalar (the rest are element-wise).
REDUCTIONS = ("max", "min", "mean", "sum")
#: Return types the subset can produce (numbers and numpy arrays).
NUMERIC_RETURNS = {"float", "int", "np.ndarray", "numpy.ndarray", "ndarray", "np.float64", "complex"}
#: Parameter annotations that hold one number, so an ``if`` may compare them.
SCALAR_TYPES = {"float", "int", "bool", "complex", "np.float64", "numpy.float64", "np.int64", "numpy.int64"}


@dataclass(frozen=True)
class GrammarConfig:
    """What a spec may change of the subset (module-level ``GRAMMAR = {...}`` in the spec)."""

    functions: dict[str, int] = field(default_factory=dict)  # extra functions: "np.foo" -> arity (1 or 2)
    replace: bool = False            # True: ``functions`` replaces the default vocabulary instead of extending it
    locals: tuple[str, ...] = DEFAULT_LOCALS
    max_statements: int = 3          # statements before the return (bounds a sample's size)
    min_statements: int = 0          # statements the body must start with (1: no bare ``return``)
    max_depth: int = 2               # nesting of calls and parentheses inside an expression
    max_terms: int = 4               # terms in one sum, factors in one product (each)
    where: bool = True               # offer np.where(cond, a, b) when numpy is imported
    conditions: bool = True          # offer if/elif/else chains of returns

    @classmethod
    def from_spec(cls, value: Any, where: str) -> "GrammarConfig":
        """Read a spec's ``GRAMMAR`` dict, naming the key and the fix on any mistake."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: GRAMMAR must be a dict, e.g. GRAMMAR = {{'functions': {{'np.log2': 1}}}}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"{where}: GRAMMAR has no key '{unknown[0]}'; use: {', '.join(sorted(known))}")
        functions = value.get("functions", {})
        if not isinstance(functions, dict) or not all(
                isinstance(k, str) and _is_dotted_name(k) and v in (1, 2) for k, v in functions.items()):
            raise ConfigError(f"{where}: GRAMMAR['functions'] maps a name like 'np.log2' to its number of "
                              "arguments, 1 or 2")
        names = tuple(value.get("locals", DEFAULT_LOCALS))
        if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise ConfigError(f"{where}: GRAMMAR['locals'] must be a non-empty list of Python names")
        config = cls(**{**value, "functions": dict(functions), "locals": names})
        for key in ("replace", "where", "conditions"):
            if not isinstance(getattr(config, key), bool):
                raise ConfigError(f"{where}: GRAMMAR['{key}'] must be True or False")
        for key, low, high in (("max_statements", 0, 6), ("min_statements", 0, config.max_statements),
                               ("max_depth", 0, 4), ("max_terms", 1, 8)):
            number = getattr(config, key)
            if not isinstance(number, int) or not low <= number <= high:
                raise ConfigError(f"{where}: GRAMMAR['{key}'] must be an integer from {low} to {high}")
        return config


class Unsupported(Exception):
    """The evolved function is outside what the grammar can describe (say why, then sample freely)."""


def _is_dotted_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _alternatives(options: list[str]) -> str:
    return " | ".join(options)


def imported_modules(source: str) -> dict[str, str]:
    """Return {name in the code: real module} for the spec's top-level imports."""
    modules: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                modules[alias.asname or alias.name.split(".")[0]] = alias.name
    return modules


def parameters(args: str) -> dict[str, str | None]:
    """Return {plain parameter name: its annotation or None} of a header's argument text, or raise Unsupported."""
    try:
        fn = ast.parse(f"def f({args}): pass").body[0]
    except SyntaxError as exc:
        raise Unsupported(f"cannot read the parameters ({exc.msg})") from None
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        raise Unsupported("the evolved function takes *args, **kwargs or keyword-only parameters")
    if not a.args:
        raise Unsupported("the evolved function takes no parameters")
    return {arg.arg: ast.unparse(arg.annotation) if arg.annotation else None for arg in a.args}


def build_grammar(args: str, return_type: str | None, source: str, config: GrammarConfig | None = None) -> str:
    """Return the GBNF grammar of a body for a function with these parameters in this spec source.

    Raises `Unsupported` when the function is outside the subset (a non-numeric return
    type, *args or keyword-only parameters, no parameters). A local named like a
    parameter is left out of the locals.
    """
    config = config or GrammarConfig()
    if return_type is not None and return_type.strip() not in NUMERIC_RETURNS:
        raise Unsupported(f"it returns {return_type}, and the grammar writes numbers and arrays only")
    params = parameters(args)
    local_names = [n for n in config.locals if n not in params]
    if config.min_statements and not local_names:
        raise Unsupported("GRAMMAR asks for statements, but every local name is a parameter")
    modules = imported_modules(source)
    functions = _functions(modules, config)
    numpy_alias = next((alias for alias, real in modules.items() if real == "numpy"), None)
    reductions = {f"{numpy_alias}.{name}" for name in REDUCTIONS} & set(functions) if numpy_alias else set()
    scalars = [name for name, annotation in params.items() if annotation is None or annotation in SCALAR_TYPES]
    return _GrammarWriter(list(params), local_names, functions, numpy_alias if config.where else None, config,
                          scalars if len(scalars) < len(params) else None, reductions).write()


def _functions(modules: dict[str, str], config: GrammarConfig) -> dict[str, int]:
    """Return {callable as written: arity} from the imported modules and the spec's additions."""
    functions: dict[str, int] = {}
    if not config.replace:
        for alias, real in modules.items():
            for name, arity in DEFAULT_FUNCTIONS.get(real, {}).items():
                functions[f"{alias}.{name}"] = arity
    for name, arity in config.functions.items():
        root = name.split(".")[0]
        if "." in name and root not in modules:
            raise Unsupported(f"GRAMMAR names {name}, but the spec does not import {root}")
        if "." in name and not _callable_in(modules[root], name.split(".")[1:]):
            raise Unsupported(f"GRAMMAR names {name}, which is not a function of {modules[root]}")
        functions[name] = arity
    return functions


def _callable_in(module: str, path: list[str]) -> bool:
    """Whether ``module.path`` is something to call (the spec imports the module already)."""
    try:
        target = importlib.import_module(module)
        for part in path:
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return False
    return callable(target)


class _GrammarWriter:
    """Writes the rules; a set of assigned locals is a bit mask, so each rule knows its names."""

    def __init__(self, params: list[str], local_names: list[str], functions: dict[str, int],
                 numpy_alias: str | None, config: GrammarConfig, scalars: list[str] | None, reductions: set[str]):
        self.params, self.local_names, self.functions = params, local_names, functions
        self.numpy_alias, self.config = numpy_alias, config
        self.scalars, self.reductions = scalars, reductions  # scalars None: every parameter is a number
        self.rules: dict[str, str] = {}

    def write(self) -> str:
        self.rules["root"] = self._body(0, 0)
        # No leading zeros: Python refuses the literal 030.
        self.rules["num"] = '("0" | [1-9] [0-9]{0,3}) ("." [0-9]{1,2})?'
        self.rules["power"] = '" ** " ("2" | "3" | "0.5")'
        self.rules["addop"] = '" + " | " - "'
        self.rules["mulop"] = '" * " | " / "'
        self.rules["cmp"] = '" < " | " > " | " <= " | " >= " | " == " | " != "'
        return "\n".join(f"{name} ::= {rule}" for name, rule in self.rules.items()) + "\n"

    # -- statements ------------------------------------------------------------------

    def _body(self, mask: int, count: int) -> str:
        name = f"body-{mask}-{count}"
        if name in self.rules:
            return name
        self.rules[name] = ""  # reserve: rules refer to each other
        expr = self._expr(self.config.max_depth, mask)
        options = []
        if count >= self.config.min_statements:
            options.append(f'"    return " {expr} "\\n"')
            if self.config.conditions:
                options.append(self._if_chain(mask))
        if count < self.config.max_statements:
            for i, local in enumerate(self.local_names):
                bit = 1 << i
                if mask & bit:
                    update = f'"    {local} " ("+=" | "-=" | "*=") " " {expr} "\\n"'
                    options.append(f"{update} {self._body(mask, count + 1)}")
                else:
                    options.append(f'"    {local} = " {expr} "\\n" {self._body(mask | bit, count + 1)}')
        self.rules[name] = _alternatives(options)
        return name

    def _if_chain(self, mask: int) -> str:
        name = f"if-{mask}"
        if name not in self.rules:
            expr = self._expr(self.config.max_depth, mask)
            cond = self._cond(self.config.max_depth, mask, scalar=self.scalars is not None)
            branch = f'":\\n        return " {expr} "\\n"'
            self.rules[name] = (f'"    if " {cond} {branch} ("    elif " {cond} {branch})? '
                                f'("    else" {branch} | "    return " {expr} "\\n")')
        return name

    # -- expressions, by nesting level; scalar ones (prefix s) for an if-chain's conditions --

    def _expr(self, depth: int, mask: int, scalar: bool = False) -> str:
        kind = "s" if scalar else ""
        name = f"{kind}expr-{depth}-{mask}"
        if name not in self.rules:
            term, factor = f"{kind}term-{depth}-{mask}", f"{kind}factor-{depth}-{mask}"
            more = self.config.max_terms - 1
            self.rules[name] = f"{term} (addop {term}){{0,{more}}}"
            self.rules[term] = f"{factor} (mulop {factor}){{0,{more}}}"
            self.rules[factor] = f'"-"? {self._primary(depth, mask, scalar)} power?'
        return name

    def _primary(self, depth: int, mask: int, scalar: bool) -> str:
        name = f"{'s' if scalar else ''}primary-{depth}-{mask}"
        if name in self.rules:
            return name
        if scalar:
            atoms = [_literal(p) for p in self.scalars]
        else:
            atoms = [_literal(p) for p in self.params]
            atoms += [_literal(n) for i, n in enumerate(self.local_names) if mask & (1 << i)]
        atoms.append("num")
        if depth > 0:
            inner = self._expr(depth - 1, mask, scalar)
            atoms.append(f'"(" {inner} ")"')
            unary = [f for f, arity in self.functions.items() if arity == 1 and not (scalar and f in self.reductions)]
            binary = [f for f, arity in self.functions.items() if arity == 2]
            if unary:
                atoms.append(f'({_alternatives([_literal(f) for f in unary])}) "(" {inner} ")"')
            if binary:
                atoms.append(f'({_alternatives([_literal(f) for f in binary])}) "(" {inner} ", " {inner} ")"')
            if scalar and self.reductions:  # a reduction of any expression is a scalar
                reductions = _alternatives([_literal(f) for f in sorted(self.reductions)])
                atoms.append(f'({reductions}) "(" {self._expr(depth - 1, mask)} ")"')
            if not scalar and self.numpy_alias:
                cond = self._cond(depth - 1, mask)
                atoms.append(f'"{self.numpy_alias}.where(" {cond} ", " {inner} ", " {inner} ")"')
        self.rules[name] = _alternatives(atoms)
        return name

    def _cond(self, depth: int, mask: int, scalar: bool = False) -> str:
        name = f"{'s' if scalar else ''}cond-{depth}-{mask}"
        if name not in self.rules:
            expr = self._expr(depth, mask, scalar)
            self.rules[name] = f"{expr} cmp {expr}"
        return name


def grammar_for(spec) -> str:
    """Return the body grammar for a spec's evolved function (raises `Unsupported`)."""
    config = GrammarConfig.from_spec(spec.namespace.get("GRAMMAR"), spec.path)
    seed = spec.seed_function
    return build_grammar(seed.args, seed.return_type, spec.source, config)
