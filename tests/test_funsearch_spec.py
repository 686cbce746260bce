"""Spec files: the format, and clear errors for bad ones before any model call."""

import re
from pathlib import Path

import pytest

from genlab.search.funsearch.config import EvolveConfig
from genlab.search.funsearch.evaluator import Evaluator
from genlab.search.funsearch.report import baselines, score_program
from genlab.search.funsearch.runner import Run, evolve
from genlab.search.funsearch.spec import SpecError, load_spec

GOOD = '''import funsearch


@funsearch.run
def solve(x):
    return guess(x)


@funsearch.evolve
def guess(x):
    """Guess a number."""
    return 0


@funsearch.inputs
def inputs():
    return {"a": 1, "b": 2}
'''


def spec_error(source: str, tmp_path) -> str:
    path = tmp_path / "my_spec.py"
    path.write_text(source)
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    return str(info.value)


def test_good_spec_parses_and_runs(tmp_path):
    path = tmp_path / "guess.py"
    path.write_text(GOOD)
    spec = load_spec(str(path))
    assert spec.function_name == "guess" and spec.entry == "solve"
    assert "funsearch" not in spec.program(spec.seed_function)
    assert "def guess" not in spec.prompt_skeleton and "def inputs" not in spec.prompt_skeleton
    evaluation = Evaluator(spec).evaluate("def guess(x):\n    return x * 10\n")
    assert evaluation.scores == {"a": 10.0, "b": 20.0} and evaluation.score == 15.0


def test_a_program_that_fails_on_one_input_is_not_kept(tmp_path):
    # Averaged over the inputs it scored on, it would rank among programs scored on all of
    # them: evaluator.Evaluation.valid tells how that once took over a bin-packing search.
    path = tmp_path / "guess.py"
    path.write_text(GOOD)
    evaluation = Evaluator(load_spec(str(path))).evaluate("def guess(x):\n    return 10 // (2 - x)\n")
    assert evaluation.scores == {"a": 10.0} and "ZeroDivisionError" in evaluation.errors["b"]
    assert not evaluation.valid and evaluation.score is None and evaluation.error_kind == "exception"


def test_an_error_names_the_line_of_the_function_or_of_the_spec(tmp_path):
    """The sandbox runs the spec's code around the function; a line of that whole program
    would point nowhere the user can see."""
    path = tmp_path / "guess.py"
    path.write_text(GOOD.replace("    return guess(x)\n", "    return [1, 2][guess(x)]  # index by the guess\n"))
    evaluation = Evaluator(load_spec(str(path))).evaluate("def guess(x):\n    y = x\n    return 1 // (2 - y)\n")
    assert evaluation.errors["b"] == "exception: ZeroDivisionError: integer division or modulo by zero (line 3 of guess())"
    evaluation = Evaluator(load_spec(str(path))).evaluate("def guess(x):\n    return 7\n")
    assert evaluation.errors["a"] == ("exception: IndexError: list index out of range "
                                      "(the spec's line `return [1, 2][guess(x)]`)")


def test_a_seed_that_fails_on_one_input_stops_the_run_before_any_sample(tmp_path):
    path = tmp_path / "guess.py"
    path.write_text(GOOD.replace("    return 0\n", "    return 10 // (2 - x)\n"))
    with pytest.raises(SpecError, match=r"the seed function guess\(\) fails on 1 of 2 inputs \(b: exception: "
                                        r"ZeroDivisionError.*fix the spec before evolving it"):
        evolve(EvolveConfig(spec=str(path), samples=4), tmp_path / "run")
    # Nothing is left to stand in the way: once the spec is fixed, the same command starts the run
    # (the folder held the bad spec, so --resume failed again and a new start was refused).
    assert not (tmp_path / "run").exists()
    path.write_text(GOOD)
    run = Run.start(EvolveConfig(spec=str(path), samples=4), tmp_path / "run")
    assert [row.score for row in run.store.samples("prompt_id IS NULL")] == [0.0]   # the seed, scored


@pytest.mark.parametrize("source, message", [
    (GOOD.replace("@funsearch.evolve\n", ""), "has no function marked @funsearch.evolve; mark the function to evolve"),
    (GOOD.replace("@funsearch.run\n", ""), "has no function marked @funsearch.run"),
    (GOOD.replace("@funsearch.inputs\n", ""), "has no function marked @funsearch.inputs"),
    (GOOD.replace("return {\"a\": 1, \"b\": 2}", "return {}"), "inputs() must return a non-empty dict"),
    (GOOD.replace("return {\"a\": 1, \"b\": 2}", "return 1 / 0"), "inputs() raised ZeroDivisionError"),
    (GOOD.replace("def solve(x):", "def solve(x)"), "line 5: syntax error"),
    (GOOD.replace("@funsearch.run", "@funsearch.runn"), "unknown decorator @funsearch.runn"),
    (GOOD.replace("@funsearch.run\ndef solve", "@funsearch.evolve\ndef solve"), "are marked @funsearch.evolve; mark exactly one"),
    ("import funsearch\nimport no_such_module_here\n" + GOOD, "loading the spec raised ModuleNotFoundError"),
])
def test_bad_specs_are_named(tmp_path, source, message):
    assert message in spec_error(source, tmp_path)


def test_unknown_spec_name():
    with pytest.raises(SpecError, match="no spec 'bin-pack': give a path to a spec file or one of: bin-packing, cap-set"):
        load_spec("bin-pack")


def test_bin_packing_baselines_equal_the_paper_exactly():
    rows = {row["name"]: row for row in baselines(load_spec("bin-packing"))}
    figures = {name: [round(rows[name]["results"][d]["metric"]["value"], 2)
                      for d in ("OR1", "OR2", "OR3", "OR4", "Weibull 5k")] for name in ("First Fit", "Best Fit")}
    assert figures["First Fit"] == [6.42, 6.45, 5.74, 5.23, 4.23]
    assert figures["Best Fit"] == [5.81, 6.06, 5.37, 4.94, 3.98]
    assert rows["FunSearch (paper)"]["published"]["Weibull 5k"] == 0.68


def test_a_spec_without_baselines_says_what_to_compare_instead():
    with pytest.raises(SpecError, match="cap-set spec defines no BASELINES.*--run RUN_DIR.*genlab evolve score cap-set"):
        baselines(load_spec("cap-set"))
    knapsack = str(Path(__file__).resolve().parent.parent / "examples" / "specs" / "knapsack.py")
    with pytest.raises(SpecError, match=f"genlab evolve score {re.escape(knapsack)} FILE.py"):   # its path, not its name
        baselines(load_spec(knapsack))


def test_bin_packing_prompt_hides_plumbing_and_baselines():
    skeleton = load_spec("bin-packing").prompt_skeleton
    assert "def solve" in skeleton
    for hidden in ("BASELINES", "PUBLISHED", "def score", "def inputs", "def priority", "funsearch"):
        assert hidden not in skeleton, hidden


def test_cap_set_trivial_seed_gives_two_to_the_n_and_sets_are_checked():
    spec = load_spec("cap-set")
    results = score_program(spec, str(spec.seed_function), {"dims": {f"n={n}": n for n in range(3, 9)}})
    assert results["dims"]["score"] == sum(2 ** n for n in range(3, 9)) / 6
    assert spec.score(3, [[0, 0, 0], [1, 1, 1]]) == 2.0
    with pytest.raises(ValueError, match="not a cap set"):
        spec.score(3, [[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    with pytest.raises(ValueError, match="appears twice"):
        spec.score(2, [[0, 1], [0, 1]])


def test_a_run_can_start_from_one_of_the_spec_baselines():
    spec = load_spec("bin-packing")
    assert spec.seed_program(None) == spec.seed_function
    best_fit = spec.seed_program("best-fit")
    assert best_fit.body.strip() == "return -(bins - item)"
    # The header and docstring stay the spec's, so the prompt reads as from the spec's own seed.
    assert (best_fit.args, best_fit.return_type, best_fit.docstring) == (
        spec.seed_function.args, spec.seed_function.return_type, spec.seed_function.docstring)
    assert spec.seed_program("First Fit").body.strip() == "return 0.0"
    with pytest.raises(SpecError, match="^the bin-packing spec has no baseline 'worst-fit' to seed from; "
                                        "choose one of: first-fit, best-fit$"):
        spec.seed_program("worst-fit")
