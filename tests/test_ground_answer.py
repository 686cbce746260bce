"""Grounded answers on the real embedded model and embedder: citations that point at
spans holding the facts, abstentions without a model call, Gemini's byte offsets."""

from __future__ import annotations

import json

import pytest

from fake_backend import FakeBackend
from genlab.ground.answer import ABSTENTION, ask, ground_text, quote_if_uncited
from genlab.ground.backends import Passage
from genlab.ground.check import check_groundedness
from genlab.ground.support import lexical_support
from genlab.ground.embed import load_embedder
from genlab.ground.retrieval import NotebookSearch
from genlab.errors import ConfigError
from genlab.models import Model, get_backend
from tests.conftest import install_plugin

PASSAGES = [
    Passage("The Harrow Point lighthouse was built in 1847 by the engineer Ada Rennick.", "history.md", "History",
            1, 10, 84),
    Passage("Adult single: 6.50 euros. Child single (age 4 to 15): 3.25 euros.", "ferry.txt", "Ferry", 1, 0, 66),
]


def test_markers_are_stripped_and_each_sentence_cites_its_passages():
    raw = "The lighthouse was built in 1847 [1]. A child ticket costs 3.25 euros.[2][1] It has 9 rooms. [7]"
    answer = ground_text(raw, PASSAGES, load_embedder())
    assert answer.answer == "The lighthouse was built in 1847. A child ticket costs 3.25 euros. It has 9 rooms."
    assert answer.invalid_citations == 1
    first, second = answer.supports[:2]
    assert first.text == "The lighthouse was built in 1847." and first.chunk_indices == (0,)
    assert second.chunk_indices == (1, 0) and second.cited_by == "model"
    assert all(0.0 <= c <= 1.0 for s in answer.supports for c in s.confidences)
    assert answer.with_markers().startswith("The lighthouse was built in 1847.[1] A child ticket costs 3.25 euros.[2][1]")


def test_segment_offsets_are_utf8_bytes_like_gemini():
    raw = "Café owners say the lighthouse was built in 1847 by Ada Rennick. [1] Tickets cost 3.25 euros. [2]"
    data = ground_text(raw, PASSAGES, load_embedder()).to_dict()
    answer_bytes = data["answer"].encode("utf-8")
    for support in data["grounding_metadata"]["grounding_supports"]:
        segment = support["segment"]
        assert answer_bytes[segment["start_index"]:segment["end_index"]].decode() == segment["text"]
    second = data["grounding_metadata"]["grounding_supports"][1]["segment"]
    assert second["start_index"] == len(data["answer"][:data["answer"].index("Tickets")]) + 1   # é is two bytes


def test_a_sentence_without_a_marker_is_cited_only_when_close_to_a_passage():
    answer = ground_text("The lighthouse was built in 1847 by Ada Rennick. Bananas are yellow.", PASSAGES,
                         load_embedder())
    assert [(s.text, s.chunk_indices, s.cited_by) for s in answer.supports] == [
        ("The lighthouse was built in 1847 by Ada Rennick.", (0,), "genlab")]


def test_a_sentence_without_a_marker_goes_to_the_passage_holding_its_words_and_numbers():
    answer = ground_text("A child single costs 3.25 euros. A child single costs 4.75 euros.", PASSAGES,
                         load_embedder())
    assert [(s.text, s.chunk_indices, s.cited_by) for s in answer.supports] == [
        ("A child single costs 3.25 euros.", (1,), "genlab")]      # 4.75 is in no passage: not cited


def test_the_models_own_abstention_is_recognised():
    answer = ground_text("The sources do not say.", PASSAGES, load_embedder())
    assert answer.abstained and answer.supports == []


def test_a_draft_that_cites_nothing_becomes_the_closest_sentence_quoted():
    passages = [Passage("# Harrow Point lighthouse\n\nHarrow Point lighthouse. The lighthouse was built in 1847 "
                        "by the engineer Ada Rennick. Its lamp burned whale oil.", "history.md", "History", 1, 0, 120),
                PASSAGES[1]]
    draft = ground_text("The answer is: The answer is:", passages, load_embedder())
    assert draft.supports == [] and not draft.abstained
    draft.question = "When was the Harrow Point lighthouse built?"
    quoted = quote_if_uncited(draft, load_embedder())
    # The heading and the three-word title line say the most about the question; neither is quoted.
    assert quoted.answer == "The lighthouse was built in 1847 by the engineer Ada Rennick."
    assert [(s.start, s.end, s.chunk_indices, s.cited_by) for s in quoted.supports] == [
        (0, len(quoted.answer), (0,), "genlab")]
    data = quoted.to_dict()
    assert data["quoted"] is True and data["draft"] == "The answer is: The answer is:"
    assert quoted.with_markers() == quoted.answer + "[1]"
    assert "quoted" not in draft.to_dict()
    cited = ground_text("It was built in 1847 [1].", passages, load_embedder())
    assert quote_if_uncited(cited, load_embedder()) is cited                # a draft that cites is kept
    nothing_to_quote = ground_text("No idea.", [Passage("# Fares", "f.md", "Fares", 1, 0, 7)], load_embedder())
    assert quote_if_uncited(nothing_to_quote, load_embedder()) is nothing_to_quote


def test_ask_quotes_only_a_draft_that_cites_nothing(store):
    """Control logic on a scripted backend: which drafts ask() replaces by a quote."""
    question = "When was the Harrow Point lighthouse built?"

    def answer(draft: str, **options):
        # One model name per draft: answers are cached by model and prompt.
        model = Model(f"fake {draft} {options}", FakeBackend([draft]), store=store, source="test")
        return ask(model, ListBackend(), question, k=2, shown=1, min_coverage=0, **options)

    quoted = answer("The answer is: The answer is:")
    assert quoted.draft == "The answer is: The answer is:" and quoted.supports[0].chunk_indices == (0,)
    assert quoted.answer in PASSAGES[0].text
    kept = answer("It was built in 1847 [1].")
    assert kept.draft is None and kept.answer == "It was built in 1847."
    uncited = answer("The answer is: The answer is:", quote=False)
    assert uncited.draft is None and uncited.supports == []
    assert answer(ABSTENTION).abstained


def test_evaluation_counts_quotes_apart(store):
    """A quote is grounded by construction, so end-to-end evaluation says how many answers were quotes."""
    from genlab.ground.evaluation import QARow, end_to_end

    rows = [QARow(1, "When was the Harrow Point lighthouse built?", ("built in 1847",), None, "1847", True),
            QARow(2, "Who built the Harrow Point lighthouse?", ("Ada Rennick",), None, "Ada Rennick", True)]
    model = Model("fake", FakeBackend(["The answer is: The answer is:", "Ada Rennick built it [1]."]),
                  store=store, source="test")
    result = end_to_end(model, ListBackend(), rows, k=2, shown=1)
    assert [row["quoted"] for row in result["rows"]] == [True, False]
    assert result["quoted"] == 0.5 and result["answer_contains_reference"] == 1.0


def test_an_unanswerable_question_abstains_without_calling_the_model(velmora, local, store):
    answer = ask(local, NotebookSearch(velmora), "Who won the 1998 football World Cup?")
    assert answer.abstained and answer.answer == ABSTENTION
    data = answer.to_dict()
    assert data["grounding_metadata"]["grounding_supports"] == []
    assert store.execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0


def test_an_on_topic_question_the_sources_do_not_answer_abstains_before_the_model(velmora, local, store):
    question = "Which zeppelin company made the lamp of the Harrow Point lighthouse?"
    answer = ask(local, NotebookSearch(velmora), question)
    assert answer.abstained and answer.abstain_reason == "no source mentions 'zeppelin'"
    # the reason names the word as the question wrote it, not its stem ('zeppelin')
    assert ask(local, NotebookSearch(velmora), question.replace("zeppelin", "Zeppelins")).abstain_reason \
        == "no source mentions 'zeppelins'"
    assert answer.to_dict()["abstain_reason"] == answer.abstain_reason
    assert store.execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    ask(local, NotebookSearch(velmora), question, min_coverage=0)        # the gate off: the model is asked
    assert store.execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 1


@pytest.mark.parametrize("question, fact", [
    ("Who is the current mayor of Velmora?", "Irene Castell"),
    ("When does the chess club meet?", "Thursday"),
    ("Who is the island warden on Kestrel Island?", "Petra Lind"),
])
def test_citations_point_at_spans_that_hold_the_fact(velmora, local, question, fact):
    answer = ask(local, NotebookSearch(velmora), question)
    assert not answer.abstained
    data = json.loads(json.dumps(answer.to_dict()))
    chunks = data["grounding_metadata"]["grounding_chunks"]
    # The passages shown to the model are exact spans of the stored source text, with pages.
    texts = {s.path: velmora.source_text(s.id) for s in velmora.sources()}
    for chunk in chunks:
        assert texts[chunk["source"]][chunk["start"]:chunk["end"]] == chunk["text"]
        assert chunk["page"] >= 1
    assert any(fact in chunk["text"] for chunk in chunks)       # retrieval showed the model the fact
    # Every citation in a support names a chunk that was shown, with a confidence each.
    for support in data["grounding_metadata"]["grounding_supports"]:
        assert len(support["grounding_chunk_indices"]) == len(support["confidence_scores"])
        assert all(0 <= i < len(chunks) for i in support["grounding_chunk_indices"])
    # When the model's answer states the fact, the sentence saying it cites a chunk that holds it.
    for support in data["grounding_metadata"]["grounding_supports"]:
        if fact in support["segment"]["text"]:
            assert any(fact in chunks[i]["text"] for i in support["grounding_chunk_indices"])


def test_groundedness_with_the_lexical_check():
    answer = ground_text("The lighthouse was built in 1847 [1]. The lighthouse was built in 1903 [1]. "
                         "A child single costs 3.25 euros [2].", PASSAGES, load_embedder())
    report = check_groundedness(answer, method="lexical")
    assert [c.supported for c in report.claims] == [True, False, True]
    assert report.supported_fraction == pytest.approx(2 / 3)
    assert report.citation_precision == pytest.approx(2 / 3)


def test_groundedness_with_the_embedded_model_as_judge(local):
    answer = ground_text("The lighthouse was built in 1847 [1]. Children pay 3.25 euros [2].", PASSAGES,
                         load_embedder())
    report = check_groundedness(answer, local, "judge")
    assert len(report.claims) == 2
    assert all(m == ["judge"] for m in (c.methods for c in report.claims))
    assert report.citation_precision in (0.0, 0.5, 1.0)


def test_an_abstention_has_no_claims_to_check():
    report = check_groundedness(ground_text("The sources do not say.", PASSAGES, load_embedder()))
    assert report.claims == [] and report.supported_fraction is None


@pytest.mark.parametrize("claim, supported", [
    ("The lighthouse was built in 1847.", True),
    ("The lighthouse was built in 1848.", False),          # a number the passage lacks
    ("Ada Rennick built the lighthouse.", True),
    ("The lighthouse has a gift shop and a cafe.", False),
])
def test_lexical_support(claim, supported):
    assert lexical_support(claim, PASSAGES[0].text) is supported


class ListBackend:
    """A search backend over a fixed list: what a plugged-in web search returns."""

    name = "list"

    def search(self, query, k):
        return PASSAGES[:k]


def make_list_backend(argument: str | None = None):
    return ListBackend()


def test_a_plugged_in_backend_gets_similarities_filled_in(local):
    backend = get_backend("tests.test_ground_answer:make_list_backend", "search")
    answer = ask(local, backend, "When was the Harrow Point lighthouse built?", k=2)
    assert all(p.similarity is not None for p in answer.chunks)
    # The lighthouse passage is about the question; the fares passage is not.
    assert answer.chunks[0].similarity > 0.35 > answer.chunks[1].similarity
    assert not answer.abstained


def test_the_gates_read_every_passage_found_and_the_model_sees_the_first_shown(local, store):
    backend = ListBackend()                 # the lighthouse first, the fares second
    question = "How many euros is a child single?"
    alone = ask(local, backend, question, k=1)
    assert alone.abstained and alone.abstain_reason.startswith(("the closest passage", "the best passage", "no source"))
    assert store.execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    answer = ask(local, backend, question, k=2, shown=1)
    assert store.execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 1     # the fares passage let it past
    assert [p.text for p in answer.chunks] == [PASSAGES[0].text]             # but the model saw one passage
    assert all(s.chunk_indices == (0,) for s in answer.supports)


@pytest.mark.parametrize("spec, message", [
    ("plugin:nothing", "no search backend plugin 'nothing' is installed"),
    ("no.such.module:make", "search backend 'no.such.module:make': cannot load"),
    ("tests.test_ground_answer:PASSAGES", "is not callable; name a function or class"),
    ("tests.test_ground_answer:ListBackend.search", "cannot load"),
    ("builtins:object", "has no name and search"),
    ("json:loads", r"search backend 'json:loads' raised TypeError when made: .*missing 1 required positional"),
    ("json:loads?{oops", r"search backend 'json:loads\?\{oops' raised JSONDecodeError when made"),   # tracebacks
])
def test_bad_backend_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        get_backend(spec, "search")


def test_a_search_plugin_is_found_by_its_entry_point_and_a_broken_one_is_one_line(tmp_path, monkeypatch):
    source = ("class Empty:\n    name = 'empty'\n    def __init__(self, arg=''):\n        self.arg = arg\n"
              "    def search(self, query, k):\n        return []\n")
    install_plugin(tmp_path, monkeypatch, "empty_search", source, "empty = empty_search:Empty",
                   group="genlab.search_backends")
    backend = get_backend("plugin:empty?news", "search")
    assert backend.name == "empty" and backend.arg == "news" and backend.search("x", 3) == []
    (tmp_path / "broken").mkdir()
    install_plugin(tmp_path / "broken", monkeypatch, "broken_search", "import no_such_module_anywhere\n",
                   "broken = broken_search:Search", group="genlab.search_backends")
    with pytest.raises(ConfigError, match=r"search backend 'plugin:broken': cannot load plugin:broken "
                                          r"\(ModuleNotFoundError: No module named 'no_such_module_anywhere'\)"):
        get_backend("plugin:broken", "search")


def test_search_backends_are_in_the_one_registry(tmp_path, monkeypatch):
    """`genlab models` lists the search forms; a plugin's own prefix wins over the catch-all
    module:callable form, which matches any spec."""
    from genlab.models import BackendEntry, registry
    from genlab.models.registry import describe_entries, find_entry

    assert [usage for usage, _, _ in describe_entries("search")] == [
        "notebook:NAME", "plugin:NAME[?ARG]", "module:callable[?ARG]"]
    assert [find_entry(spec, "search").name for spec in ("notebook:town", "plugin:web", "mypkg.search:make")] == [
        "notebook", "search-plugin", "python"]
    source = ("from genlab.models import BackendEntry\n"
              "from tests.test_ground_answer import ListBackend\n"
              "ENTRY = BackendEntry('web', 'web:INDEX', 'a web index', lambda spec: ListBackend(),\n"
              "                     prefixes=('web:',), kind='search', status=lambda: 'ready')\n")
    install_plugin(tmp_path, monkeypatch, "web_search", source, "web = web_search:ENTRY")
    try:
        assert get_backend("web:news", "search").search("lighthouse", 1) == PASSAGES[:1]
        assert ("web:INDEX", "a web index", "ready") in describe_entries("search")
        assert isinstance(find_entry("web:news", "search"), BackendEntry)
    finally:
        registry.plugins.cache_clear()


class WordOverlapSearch:
    """A search backend from outside genlab (as a plugin would be): its own passages, ranked
    by shared words; it reaches genlab only through search() and passages()."""

    def __init__(self, passages):
        self.name, self._passages = "words:velmora", list(passages)

    def search(self, query, k):
        words = set(query.lower().split())
        scored = sorted(self._passages, key=lambda p: -len(words & set(p.text.lower().split())))
        return scored[:k]

    def passages(self):
        return self._passages


def test_any_search_backend_with_passages_can_be_evaluated_and_briefed(velmora, local):
    from conftest import VELMORA_QA
    from genlab.errors import ConfigError
    from genlab.ground.evaluation import load_qa, retrieval_metrics
    from genlab.ground.outputs import briefing
    from genlab.ground.retrieval import NotebookSearch

    plugin = WordOverlapSearch(NotebookSearch(velmora).passages())
    metrics = retrieval_metrics(plugin, load_qa(VELMORA_QA), VELMORA_QA)
    assert list(metrics) == ["search"] and 0 < metrics["search"]["recall@10"] <= 1

    class SearchOnly:
        name = "search-only"

        def search(self, query, k):
            return plugin.search(query, k)

    with pytest.raises(ConfigError, match="has no passages\\(\\) method, which a briefing needs"):
        briefing(local, SearchOnly())


@pytest.mark.parametrize("draft, kept", [
    # the embedded model's briefing of the example notebook, as it looped
    ("It crosses the Grey Sound in a 15-minute 3-minute 1-minute 2-minute 3-minute 4-minute 5-minute 6-minute",
     "It crosses the Grey Sound in a 15-minute…"),
    ("The sources include a visitor's guide, a bird-watching guide, a bird-watching guide, a bird-watching guide, a bird-",
     "The sources include a visitor's guide, a bird-watching…"),
    ("The library opens at 10:00.[1] Sunday: 13:00 to 17:00 Sunday: 13:00 to 17:00 Sunday: 13:00 to 17:00 Sunday: 13",
     "The library opens at 10:00. Sunday: 13:00 to 17:00…"),
    ("It is held at the Harbour Square.[1] It is held on the second weekend.[1] It is held on the second",
     "It is held at the Harbour Square. It is held on the second weekend."),     # a repeat cut short
    # prose, numbers and a word said twice are no loop
    ("Tickets cost 0, 0 and 0 euros for children. The ferry, the ferry! It leaves at nine.",
     "Tickets cost 0, 0 and 0 euros for children. The ferry, the ferry! It leaves at nine."),
])
def test_a_draft_that_loops_is_cut_where_it_starts_to_repeat(draft, kept):
    assert ground_text(draft, PASSAGES, load_embedder()).answer == kept


def test_no_file_of_the_example_notebooks_reads_as_a_loop():
    """The rule is for what a model writes; the example notebook's prose must pass it whole."""
    from pathlib import Path

    from genlab.ground.answer import loop_start

    velmora = Path(__file__).resolve().parent.parent / "examples" / "notebook" / "velmora"
    texts = [p.read_text() for p in sorted(velmora.iterdir()) if p.suffix in (".md", ".txt", ".html")]
    assert len(texts) == 4 and all(loop_start(text) is None for text in texts)
