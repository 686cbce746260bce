"""Answer extraction, voting and selection: pure logic, checked on the formats models write."""

from collections import Counter

import pytest

from genlab.errors import ConfigError
from genlab.models import Choice
from genlab.search.classify import check_labels
from genlab.search.cot import extract_label, extract_number, extract_option, few_shot_cot, zero_shot_cot, WorkedExample
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
    right = Choice(0, "12 + 5 = 17. Then 17 - 3 = 14. The answer is 14.", "stop")
    wrong = Choice(1, "12 + 5 = 18. Then 18 - 3 = 14.", "stop")
    half = Choice(2, "4 * 6 = 24 and 24 + 7 = 30", "stop")
    assert arithmetic_check("q", right) == 1.0 and arithmetic_check("q", wrong) == 0.0
    assert arithmetic_check("q", half) == 0.5 and arithmetic_check("q", Choice(3, "no steps", "stop")) == 0.0


@pytest.mark.parametrize("labels, message", [
    ([], "the label set is empty"), (["", ""], "the label set is empty"), (["a", "", "b"], "a label is empty"),
    (["yes", "Yes"], "labels must be distinct"), (["only"], "one label (only) leaves nothing to decide"),
    (["ok", "bad\x00"], "characters a model cannot write"), (["ok", "\ud800"], "characters a model cannot write"),
])
def test_bad_label_sets(labels, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_labels(labels)
