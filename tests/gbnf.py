"""A reference reader for the GBNF that genlab writes: does a text match, and random sentences.

Only for tests: it knows the part of llama.cpp's GBNF that `genlab.search.funsearch.grammar`
uses (string literals, character classes, rule names, groups, ``|``, ``?``, ``*``, ``+``,
``{m,n}``), so tests can check what the grammar accepts without a model in the loop.
A rule that refers to itself before consuming text (left recursion) is not supported.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

_TOKEN = re.compile(r'\s*(?:(?P<lit>"(?:\\.|[^"\\])*")|(?P<cls>\[(?:\\.|[^\]\\])*\])|(?P<name>[a-zA-Z0-9-]+)'
                    r'|(?P<rep>\{\d+(?:,\d*)?\})|(?P<op>[()|?*+]))')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1)), text)


def _char_class(text: str) -> tuple[bool, list[tuple[str, str]]]:
    body = _unescape(text[1:-1])
    negated = body.startswith("^")
    body = body[1:] if negated else body
    ranges, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            ranges.append((body[i], body[i + 2]))
            i += 3
        else:
            ranges.append((body[i], body[i]))
            i += 1
    return negated, tuple(ranges)


def parse(grammar: str) -> dict[str, tuple]:
    """Return {rule name: node}; nodes are ('alt', [...]), ('seq', [...]), ('lit', s), ('cls', ...),
    ('ref', name) and ('rep', node, low, high)."""
    rules = {}
    for line in grammar.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, definition = line.partition("::=")
        tokens = [m for m in _TOKEN.finditer(definition) if m.group(0).strip()]
        node, rest = _alternatives(tokens, 0)
        assert rest == len(tokens), f"cannot read rule {name.strip()}: {definition}"
        rules[name.strip()] = node
    return rules


def _alternatives(tokens, i):
    options = []
    while True:
        seq, i = _sequence(tokens, i)
        options.append(seq)
        if i < len(tokens) and tokens[i].group("op") == "|":
            i += 1
            continue
        return ("alt", tuple(options)), i


def _sequence(tokens, i):
    items = []
    while i < len(tokens) and tokens[i].group("op") not in ("|", ")"):
        token = tokens[i]
        if token.group("lit"):
            item = ("lit", _unescape(token.group("lit")[1:-1]))
        elif token.group("cls"):
            item = ("cls", *_char_class(token.group("cls")))
        elif token.group("name"):
            item = ("ref", token.group("name"))
        elif token.group("op") == "(":
            item, i = _alternatives(tokens, i + 1)
            assert tokens[i].group("op") == ")"
        else:
            raise ValueError(f"unexpected {token.group(0)!r}")
        i += 1
        while i < len(tokens) and (tokens[i].group("rep") or tokens[i].group("op") in ("?", "*", "+")):
            mark = tokens[i].group(0).strip()
            low, high = {"?": (0, 1), "*": (0, None), "+": (1, None)}.get(mark, (None, None))
            if low is None:
                low_text, _, high_text = mark[1:-1].partition(",")
                low = int(low_text)
                high = low if "," not in mark else (int(high_text) if high_text else None)
            item = ("rep", item, low, high)
            i += 1
        items.append(item)
    return ("seq", tuple(items)), i


class Grammar:
    def __init__(self, text: str):
        self.rules = parse(text)

    def matches(self, text: str, rule: str = "root") -> bool:
        """True when the whole text is a sentence of the rule."""
        @lru_cache(maxsize=None)
        def ends(node, pos):  # the set of positions where a match of node starting at pos can end
            kind = node[0]
            if kind == "lit":
                return frozenset([pos + len(node[1])]) if text.startswith(node[1], pos) else frozenset()
            if kind == "cls":
                if pos >= len(text):
                    return frozenset()
                inside = any(a <= text[pos] <= b for a, b in node[2])
                return frozenset([pos + 1]) if inside != node[1] else frozenset()
            if kind == "ref":
                return ends(self.rules[node[1]], pos)
            if kind == "alt":
                return frozenset().union(*(ends(option, pos) for option in node[1]))
            if kind == "seq":
                positions = frozenset([pos])
                for item in node[1]:
                    positions = frozenset().union(*(ends(item, p) for p in positions)) if positions else positions
                return positions
            _, inner, low, high = node
            reached, frontier, count = set(), {pos}, 0
            if low == 0:
                reached.add(pos)
            while frontier and (high is None or count < high):
                count += 1
                frontier = set().union(*(ends(inner, p) for p in frontier)) - ({pos} if count > low else set())
                if count >= low:
                    reached |= frontier
                if high is None and frontier <= reached and count > low:
                    break
            return frozenset(reached)

        return len(text) in ends(self.rules[rule], 0)

    def sample(self, rng: random.Random, rule: str = "root") -> str:
        """Return a random sentence (each alternative and repeat count equally likely)."""
        out: list[str] = []

        def walk(node):
            kind = node[0]
            if kind == "lit":
                out.append(node[1])
            elif kind == "cls":
                assert not node[1], "cannot sample a negated class"
                a, b = rng.choice(node[2])
                out.append(chr(rng.randint(ord(a), ord(b))))
            elif kind == "ref":
                walk(self.rules[node[1]])
            elif kind == "alt":
                walk(rng.choice(node[1]))
            elif kind == "seq":
                for item in node[1]:
                    walk(item)
            else:
                _, inner, low, high = node
                for _ in range(rng.randint(low, low + 3 if high is None else high)):
                    walk(inner)

        walk(self.rules[rule])
        return "".join(out)
