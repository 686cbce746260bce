"""Python source surgery for program search: functions, renames, and getting a
function back out of whatever a model wrote.

Programs are stored as the source of one function (``def priority(...): ...``).
Parsing is done with `ast` (never by executing anything); renaming uses
`tokenize`, so formatting and comments survive.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Function:
    """One function's source, split into the parts a prompt rearranges."""

    name: str
    args: str                 # text between the parentheses of the header
    return_type: str | None   # annotation text, without "->"
    docstring: str | None
    body: str                 # statements after the docstring, indented by 4 spaces

    def __str__(self) -> str:
        ret = f" -> {self.return_type}" if self.return_type else ""
        text = f"def {self.name}({self.args}){ret}:\n"
        if self.docstring:
            doc = self.docstring
            text += f'    """{doc}"""\n' if "\n" not in doc else f'    """{doc}\n    """\n'
        return text + (self.body.rstrip() + "\n" if self.body.strip() else "")

    def header(self) -> str:
        """Return the ``def`` line and docstring, with no body (the prompt's last part)."""
        return str(replace(self, body=""))


def parse_function(source: str, name: str | None = None) -> Function:
    """Parse the source of a function (the first one, or the one called ``name``)."""
    tree = ast.parse(textwrap.dedent(source))
    lines = textwrap.dedent(source).splitlines()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (name is None or node.name == name):
            return _function_from_node(node, lines)
    raise ValueError(f"no function {name or ''} in the source".replace("  ", " "))


def _function_from_node(node: ast.FunctionDef, lines: list[str]) -> Function:
    source = "\n".join(lines)
    header_args = ast.get_source_segment(source, node.args) or ""
    # ast.get_source_segment on `arguments` is None before Python 3.12 when empty; fall back to unparse.
    if not header_args and (node.args.args or node.args.vararg or node.args.kwarg):
        header_args = ast.unparse(node.args)
    returns = ast.get_source_segment(source, node.returns) if node.returns else None
    docstring = ast.get_docstring(node, clean=False)
    body_nodes = node.body[1:] if docstring is not None else node.body
    if not body_nodes:
        body = ""
    elif body_nodes[0].lineno == node.lineno or (docstring is not None and body_nodes[0].lineno == node.body[0].end_lineno):
        # Statements sharing a line with the header or docstring: no lines to copy.
        body = textwrap.indent("\n".join(ast.unparse(n) for n in body_nodes), "    ")
    else:
        if docstring is not None:
            start = node.body[0].end_lineno + 1
        else:
            # Comments between the header and the first statement belong to the body.
            start = body_nodes[0].lineno
            while start - 1 > node.lineno and lines[start - 2].strip().startswith("#"):
                start -= 1
        body_lines = lines[start - 1: node.end_lineno]
        body = textwrap.indent(textwrap.dedent("\n".join(body_lines)).strip("\n"), "    ")
    if docstring is not None:
        docstring = textwrap.dedent(docstring).strip("\n").rstrip()
    return Function(node.name, header_args, returns, docstring, body)


def rename_calls(source: str, old: str, new: str) -> str:
    """Rename every use of the name ``old`` (calls, recursion, references) to ``new``."""
    if old not in source:
        return source
    tokens = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string == old:
            tok = tok._replace(string=new)
        tokens.append(tok)
    return tokenize.untokenize(tokens)


def names_used(source: str) -> set[str]:
    """Return every identifier in the source (for the 'calls an earlier version' check)."""
    try:
        return {tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.NAME}
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return set()


def normalized(source: str) -> str:
    """Return the code with formatting, comments and docstrings removed (for deduplication)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node) is not None:
            node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


# -- getting the function out of a model's answer ----------------------------------

_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


def _parse_prefix(code: str) -> ast.Module | None:
    """Parse the longest prefix of whole lines that is valid Python (None if none)."""
    lines = code.splitlines()
    while lines:
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError as exc:
            cut = (exc.lineno or len(lines)) - 1
            lines = lines[: min(cut, len(lines) - 1)]
    return None


def _body_continuation(generated: str) -> str | None:
    """Treat the text as the body of a function whose header the prompt ended with.

    As in FunSearch's reference sampler: parse under a fake header, cut the text at
    the first syntax error, and keep the lines that belong to the function.
    """
    if not generated.strip() or not generated.lstrip("\n").startswith((" ", "\t")):
        return None
    code = "def fake_function_header():\n" + generated.rstrip()
    tree = _parse_prefix(code)
    if tree is None or not tree.body or not isinstance(tree.body[0], ast.FunctionDef):
        return None
    fn = tree.body[0]
    lines = code.splitlines()[1: fn.end_lineno]
    body = "\n".join(lines)
    return body if body.strip() else None


def _function_in(code: str, name: str, preferred: str) -> Function | None:
    tree = _parse_prefix(code)
    if tree is None:
        return None
    lines = code.splitlines()
    pattern = re.compile(rf"^{re.escape(name)}(_v(\d+))?$")
    found = []
    # Top-level functions first: a version nested inside other code is a last resort.
    top_level = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n not in top_level]
    for nodes in (top_level, nested):
        for node in nodes:
            match = pattern.match(node.name)
            function = _function_from_node(node, lines) if match else None
            if function is not None and function.body.strip():
                found.append((int(match.group(2)) if match.group(2) else -1, function))
        if found:
            break
    if not found:
        return None
    for _, function in found:
        if function.name == preferred:  # the version the prompt asked for
            return function
    return max(found, key=lambda pair: pair[0])[1]  # else the newest version the model wrote


def extract_function(answer: str, header: Function, name: str) -> Function | None:
    """Return the function a model wrote, renamed to ``name``, or None.

    ``header`` is the function whose header ended the prompt (``priority_v2``).
    Handles a bare body continuing the header (completion models), a whole
    function, code fences, prose around the code, and whole-file answers.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(answer)] + [answer]
    for text in candidates:
        text = text.expandtabs(4)
        # A completion model continues the header: its body comes first.
        body = _body_continuation(text)
        if body is not None:
            # A docstring the model repeated at the top is dropped: the header has one.
            parsed = parse_function(f"def {name}({header.args}):\n{body}")
            if parsed.body.strip():
                return _as_version(replace(header, name=name, body=parsed.body), header.name, name)
        function = _function_in(text, name, header.name)
        if function is not None:
            renamed = _as_version(function, function.name, name)
            return _as_version(replace(renamed, name=name, docstring=header.docstring), header.name, name)
    return None


def _as_version(function: Function, old: str, name: str) -> Function:
    """Rename recursive calls of the version the model wrote to the evolved name."""
    if old == name:
        return function
    return replace(function, body=rename_calls(function.body, old, name))
