"""Word overlap as grounding uses it: claims, attribution, and how much of a question the
passages cover (the abstention gate), on texts small enough to check by hand."""

from __future__ import annotations

import math

import pytest

from genlab.ground.support import (TermStatistics, best_supported, coverage, lexical_support, numbers_match,
                                   question_coverage, stems)

PASSAGES = ["The Harrow Point lighthouse was built in 1847 by the engineer Ada Rennick.",
            "Adult single: 6.50 euros. Child single (age 4 to 15): 3.25 euros.",
            "The ferry to Kestrel Island leaves the harbour at nine."]


def test_coverage_is_the_share_of_content_words_and_numbers_must_all_be_there():
    assert coverage("The lighthouse was built in 1847.", PASSAGES[0]) == 1.0
    assert coverage("The lighthouse was painted in 1847.", PASSAGES[0]) == pytest.approx(2 / 3)
    assert coverage("The lighthouse was built in 1852.", PASSAGES[0]) == 0.0
    assert numbers_match("A child single costs 3.25 euros.", PASSAGES[1])
    assert not numbers_match("A child single costs 4.75 euros.", PASSAGES[1])
    assert lexical_support("Ada Rennick built the lighthouse.", PASSAGES[0])


def test_best_supported_picks_the_passage_holding_the_words_and_none_below_the_threshold():
    assert best_supported("A child single costs 3.25 euros.", PASSAGES) == (1, pytest.approx(4 / 5))
    assert best_supported("Puffins nest on the cliffs in spring.", PASSAGES) is None
    assert best_supported("anything", []) is None


def test_stems_meet_across_word_forms_and_drop_stop_words():
    assert stems("Deleting names") == stems("deleted name")
    assert "be" not in stems("being built")


def test_question_coverage_weighs_rare_words_and_names_words_no_passage_uses():
    statistics = TermStatistics.of(PASSAGES)
    assert statistics.weight("lighthous") == pytest.approx(math.log(4 / 1.5))
    assert statistics.weight("zeppelin") == pytest.approx(math.log(4 / 0.5))
    found = question_coverage("When was the lighthouse built?", PASSAGES, statistics)
    assert found.share == 1.0 and found.unseen == ()
    found = question_coverage("How tall is the lighthouse's zeppelin mast?", PASSAGES, statistics)
    assert set(found.unseen) == {"tall", "zeppelin", "mast"} and found.share < 0.3
    # "how" frames the question; it is not something the sources must mention.
    assert "how" not in question_coverage("How old is the lighthouse?", PASSAGES, statistics).unseen
    # Without the collection's statistics every word weighs the same and none is "unseen".
    plain = question_coverage("When was the lighthouse painted?", PASSAGES)
    assert plain.share == pytest.approx(1 / 2) and plain.unseen == ()
