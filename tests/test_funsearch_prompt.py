"""Prompt construction follows the paper's best-shot format exactly (golden string)."""

from genlab.search.funsearch.database import Program
from genlab.search.funsearch.prompt import build_prompt, chat_messages
from genlab.search.funsearch.spec import parse_spec

SPEC = '''"""Toy problem."""
import numpy as np

import funsearch


@funsearch.run
def solve(x: int) -> float:
    return float(priority(x, np.arange(3)).sum())


@funsearch.evolve
def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns a priority per bin."""
    return 0.0


@funsearch.inputs
def inputs():
    return {"one": 1}
'''

EXPECTED = '''"""Toy problem."""
import numpy as np


def solve(x: int) -> float:
    return float(priority(x, np.arange(3)).sum())


def priority_v0(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns a priority per bin."""
    return 0.0


def priority_v1(item: float, bins: np.ndarray) -> np.ndarray:
    """Improved version of `priority_v0`."""
    # recursion is renamed to this version
    return priority_v1(item - 1, bins) if item > 0 else bins


def priority_v2(item: float, bins: np.ndarray) -> np.ndarray:
    """Improved version of `priority_v1`."""
'''


def test_golden_prompt():
    spec = parse_spec(SPEC)
    worse = Program(1, str(spec.seed_function), (0.0,), 0.0)
    better = Program(2, 'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    """Whatever."""\n'
                        "    # recursion is renamed to this version\n"
                        "    return priority(item - 1, bins) if item > 0 else bins\n", (3.0,), 3.0)
    prompt, header = build_prompt(spec, [worse, better])
    assert prompt == EXPECTED
    assert header.name == "priority_v2" and header.body == ""


def test_v0_keeps_the_docstring_it_was_drawn_under():
    # Not the paper's form (every program there keeps the template's docstring): shown the
    # spec's docstring on v0, the embedded model wrote fewer kinds of programs, more slowly
    # (bench/evolve_small_model.py --v0-docstring; docs/evolve-levers.md).
    spec = parse_spec(SPEC)
    sample = Program(5, 'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n'
                        '    """Improved version of `priority_v1`."""\n    return bins\n', (1.0,), 1.0)
    prompt, _ = build_prompt(spec, [sample, sample])
    assert ('def priority_v0(item: float, bins: np.ndarray) -> np.ndarray:\n'
            '    """Improved version of `priority_v1`."""\n    return bins\n') in prompt
    assert "Returns a priority per bin." not in prompt


def test_one_program_gives_v0_and_v1_header():
    spec = parse_spec(SPEC)
    prompt, header = build_prompt(spec, [Program(1, str(spec.seed_function), (0.0,), 0.0)])
    assert prompt.endswith('def priority_v1(item: float, bins: np.ndarray) -> np.ndarray:\n'
                           '    """Improved version of `priority_v0`."""\n')
    assert "priority_v2" not in prompt


def test_chat_form_carries_the_same_code():
    spec = parse_spec(SPEC)
    prompt, header = build_prompt(spec, [Program(1, str(spec.seed_function), (0.0,), 0.0)])
    messages = chat_messages(prompt, header)
    assert messages[0]["role"] == "system"
    assert prompt in messages[1]["content"] and "`priority_v1`" in messages[1]["content"]
