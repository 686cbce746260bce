"""Answer extraction, voting and selection: pure logic, checked on the formats models write."""

from collections import Counter

import pytest

from genlab.errors import ConfigError
from genlab.models import Choice
from genlab.search.classify import check_labels
from genlab.search.cot import (WorkedExample, extract_label, extract_number, extract_option, few_shot_cot,
                               final_answer, zero_shot_cot)
from genlab.search.tasks import load_task
from genlab.search.ttc import arithmetic_check, best_of, majority_vote


@pytest.mark.parametrize("text, number", [
    ("12 + 5 = 17. 17 - 3 = 14. The answer is 14.", "14"),
    ("The answer is: **42**", "42"),
    ("So in total: $1,234.", "1234"),
    ("#### 7", "7"),
    ("Hence \\boxed{19}", "19"),
    ("She has 3 apples, then 5, so 8 apples now", "8"),
    ("The answer is -4.", "-4"),
    ("The answer is 2.50", "2.5"),
    ("Result = 3.0", "3"),
    ("I do not know.", None),
    ("First 10 then 20. The answer is 30. (Check: 10 + 20 = 30)", "30"),
])
def test_extract_number(text, number):
    assert extract_number(text) == number


LABELS = ["sports", "weather", "food", "technology"]


@pytest.mark.parametrize("text, label", [
    ("The answer is weather.", "weather"),
    ("This is about food, not technology. Label: food", "food"),
    ("SPORTS", "sports"),
    ("It mentions a storm, so weather", "weather"),
    ("Category: technology (maybe sports)", "technology"),
    ("no idea", None),
    ("foodie culture", None),
])
def test_extract_label(text, label):
    assert extract_label(text, LABELS) == label


@pytest.mark.parametrize("text, option", [
    ("The answer is (C).", "C"), ("B. because ...", "B"), ("I pick (a)", "A"), ("none", None)])
def test_extract_option(text, option):
    assert extract_option(text) == option


def test_cot_prompts():
    assert zero_shot_cot("2+2?")[0]["content"].endswith("Let's think step by step.")
    messages = few_shot_cot("Q?", [WorkedExample("A?", "1 + 1 = 2.", "2")])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == "1 + 1 = 2. The answer is 2."


def test_majority_vote_share_and_ties():
    vote = majority_vote(["4", None, "5", "4", "5"])
    assert vote.answer == "4" and vote.confidence == 2 / 5  # tie 2-2: the first to reach it wins
    assert vote.votes == Counter({"4": 2, "5": 2})
    assert majority_vote([None, None]).answer is None
    with pytest.raises(ConfigError, match="k must be at least 1"):
        majority_vote([])


def test_best_of_picks_the_highest_score_first_among_ties():
    chains = [Choice(i, t, "stop") for i, t in enumerate(["a", "b", "c"])]
    best = best_of("q", chains, ["1", "2", "3"], lambda q, c: {"a": 0.5, "b": 0.9, "c": 0.9}[c.text])
    assert (best.index, best.answer, best.scores) == (1, "2", [0.5, 0.9, 0.9])
    with pytest.raises(ConfigError):
        best_of("q", [], [], lambda q, c: 0)


def test_arithmetic_check_rewards_steps_that_check_out():
    question = "Sam has 12 pens and 4 boxes of 6 pens. He buys 5 more, gives 3 away and finds 7."
    right = Choice(0, "12 + 5 = 17. Then 17 - 3 = 14. The answer is 14.", "stop")
    wrong = Choice(1, "12 + 5 = 18. Then 18 - 3 = 14. The answer is 14.", "stop")
    half = Choice(2, "4 * 6 = 24 and 24 + 7 = 30. The answer is 30.", "stop")
    assert arithmetic_check(question, right) == 1.0 and arithmetic_check(question, wrong) == 0.0
    assert arithmetic_check(question, half) == 0.5 and arithmetic_check(question, Choice(3, "no steps", "stop")) == 0.0
    # the same steps without their final answer: halved, the chain never said what it concluded
    assert arithmetic_check(question, Choice(4, "12 + 5 = 17. Then 17 - 3 = 14.", "stop")) == 0.5


@pytest.mark.parametrize("labels, message", [
    ([], "the label set is empty"), (["", ""], "the label set is empty"), (["a", "", "b"], "a label is empty"),
    (["yes", "Yes"], "labels must be distinct"), (["only"], "one label (only) leaves nothing to decide"),
    (["ok", "bad\x00"], "characters a model cannot write"), (["ok", "\ud800"], "characters a model cannot write"),
])
def test_bad_label_sets(labels, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_labels(labels)


def test_a_chain_gives_an_answer_only_by_saying_it():
    assert final_answer("12 + 5 = 17. The answer is 17.\nExtra") == "17."
    assert final_answer("12 + 5 = 17.") is None  # stopped before its answer: none, not its last number
    arith = load_task("arith-1", "dev")
    assert arith.extract("The answer is 17.") == "17" and arith.extract("the answer is: $1,234.") == "1234"
    assert arith.extract("The answer is seventeen.") is None and arith.extract("12 + 5 = 17.") is None
    topics = load_task("topics", "dev")
    assert topics.extract("It is a match. The answer is Sports.") == "sports"
    assert topics.extract("The answer is football.") is None
    assert topics.read_direct("food") == "food" and arith.read_direct('{"answer": 17}') == "17"
