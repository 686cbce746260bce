"""Getting a function out of what models really write, and the code helpers behind prompts."""

import json
from pathlib import Path

import pytest

from genlab.search.funsearch.code import extract_function, normalized, parse_function, rename_calls
from genlab.search.funsearch.sampler import check_draft

# Real answers of the embedded model (SmolLM2-135M) to bin-packing prompts, in completion
# and chat form, with what a reader expects extraction to give (see "why" in each).
CASES = json.loads((Path(__file__).parent / "data" / "messy_model_outputs.json").read_text())
HEADER = parse_function('def priority_v2(item: float, bins: np.ndarray) -> np.ndarray:\n'
                        '    """Improved version of `priority_v1`."""\n')


@pytest.mark.parametrize("case", CASES, ids=[c["source"] for c in CASES])
def test_real_model_outputs(case):
    header = parse_function(case["header"])
    draft = check_draft(case["raw"], header, "priority")
    expect = case["expect"]
    if expect is None:
        assert draft.code is None and draft.error_kind == "no_function", case["why"]
    elif "discard" in expect:
        assert draft.code is None and draft.error_kind == expect["discard"], case["why"]
    else:
        assert draft.code is not None, case["why"]
        function = parse_function(draft.code)
        assert function.name == "priority" and function.args == header.args or function.name == "priority"
        for snippet in expect["body"]:
            assert snippet in function.body, (snippet, function.body)
        compile(draft.code, "<sample>", "exec")  # what goes to the sandbox is valid Python


def test_at_least_ten_real_outputs():
    assert len(CASES) >= 10 and sum(c["expect"] is not None for c in CASES) >= 8


@pytest.mark.parametrize("answer, body", [
    ("    return -(bins - item)\n\n\ndef helper():\n    pass", "return -(bins - item)"),
    ("\n    x = bins - item\n    return -x\nsome trailing prose that is not code", "return -x"),
    ('    """Repeated docstring."""\n    return bins * 0\n', "return bins * 0"),
    ("Sure!\n```python\ndef priority_v2(item, bins):\n    return bins\n```\nHope it helps.", "return bins"),
    ("```py\nimport numpy as np\n\ndef priority(item, bins):\n    return np.zeros_like(bins)\n```", "np.zeros_like"),
    ("\tif item > 10:\n\t\treturn bins\n\treturn -bins\n", "return -bins"),
])
def test_common_shapes(answer, body):
    function = extract_function(answer, HEADER, "priority")
    assert function is not None and function.name == "priority" and body in function.body


def test_recursion_on_the_written_version_becomes_the_evolved_name():
    draft = check_draft("    return priority_v2(item - 1, bins) if item else bins\n", HEADER, "priority")
    assert "priority(item - 1, bins)" in draft.code and draft.error_kind is None


def test_calling_an_earlier_version_is_discarded():
    draft = check_draft("    return priority_v1(item, bins) * 2\n", HEADER, "priority")
    assert draft.code is None and draft.error_kind == "calls_earlier_version" and "priority_v1" in draft.error


def test_parse_and_print_round_trip():
    source = ('def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    """Doc.\n\n    More.\n    """\n'
              "    # why\n    return bins\n")
    function = parse_function(source)
    assert (function.name, function.args, function.return_type) == ("priority", "item: float, bins: np.ndarray", "np.ndarray")
    assert str(function) == source
    assert function.header().endswith('    """\n') and "return" not in function.header()


def test_rename_calls_only_renames_whole_names():
    code = "def f(x):\n    return f(x) + f_v1(x) + g.f\n"
    assert rename_calls(code, "f", "f_v2") == "def f_v2(x):\n    return f_v2(x) + f_v1(x) + g.f_v2\n"


def test_normalized_ignores_comments_docstrings_and_layout():
    a = 'def p(x):\n    """Doc."""\n    # comment\n    return (x+1)\n'
    b = "def p(x):\n    return x + 1\n"
    assert normalized(a) == normalized(b)
