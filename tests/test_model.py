"""Model's control logic (n fallback, enum unwrapping, cache, budget, logging) on a
FakeBackend; the same paths run on real backends in test_local and test_serve."""

import pytest

from fake_backend import FakeBackend
from genlab.errors import BudgetExceeded, ConfigError, ModelError
from genlab.models import Budget, Model, get_model
from tests.conftest import install_plugin


def make(store, **kw) -> tuple[Model, FakeBackend]:
    backend = FakeBackend(**kw)
    return Model("fake", backend, store=store, source="test"), backend


def calls(store):
    return store.execute("SELECT * FROM calls ORDER BY id")


def test_n_without_native_n_makes_n_calls_with_successive_seeds(store):
    model, backend = make(store)
    response = model.chat("hi", n=3, seed=10, temperature=1)
    assert [r.seed for r in backend.calls] == [10, 11, 12]
    assert all(r.n == 1 for r in backend.calls)
    assert response.texts == ["answer 1", "answer 2", "answer 3"]
    assert response.usage.prompt_tokens == 30 and response.usage.completion_tokens == 15


def test_enum_goes_as_json_schema_and_comes_back_as_the_label(store):
    model, backend = make(store, answers=['{"label": "no"}'])
    response = model.chat("Is fire cold?", response_format={"type": "enum", "enum": ["yes", "no"]})
    assert response.text == "no"
    assert backend.calls[0].response_format.type == "json_schema"


def test_enum_streamed_gives_the_label_not_json(store):
    model, _ = make(store, answers=['{"label": "yes"}'])
    stream = model.chat("?", stream=True, response_format={"type": "enum", "enum": ["yes", "no"]})
    assert [c.text for c in stream] == ["yes"]
    assert stream.response.text == "yes"


def test_label_outside_the_enum_is_an_error(store):
    model, _ = make(store, answers=['{"label": "maybe"}'])
    with pytest.raises(ModelError, match="'maybe', which is not one of the enum labels"):
        model.chat("?", response_format={"type": "enum", "enum": ["yes", "no"]})


def test_unsupported_parameter_refused_not_dropped(store):
    model, backend = make(store)
    with pytest.raises(ConfigError, match="fake does not take top_k"):
        model.chat("hi", top_k=5)
    with pytest.raises(ConfigError, match="no plain completions endpoint"):
        model.complete("hi")
    with pytest.raises(ConfigError, match="fake does not take frequency_penalty; drop it"):
        model.chat("hi", frequency_penalty=0.5)
    with pytest.raises(ConfigError, match="fake does not take logit_bias; drop it"):
        model.chat("hi", logit_bias={"5": 1})
    assert backend.calls == []
    model.chat("hi", presence_penalty=0, frequency_penalty=0.0, logit_bias={})   # what many clients send
    call = backend.calls[0]
    assert call.presence_penalty is None and call.frequency_penalty is None and call.logit_bias is None


def test_cache_only_for_deterministic_requests(store):
    model, backend = make(store)
    first = model.chat("hi", temperature=0, cache=True)
    second = model.chat("hi", temperature=0, cache=True)
    assert second.cache_hit and second.text == first.text and len(backend.calls) == 1
    model.chat("hi", temperature=1, cache=True)
    model.chat("hi", temperature=1, cache=True)
    assert len(backend.calls) == 3  # sampled without a seed: never cached
    rows = calls(store)
    assert [r["cache_hit"] for r in rows] == [0, 1, 0, 0]


def test_every_call_is_logged_with_cost_and_errors(store):
    model, _ = make(store)
    model.chat("hi")
    failing, _ = make(store, fail=True)
    with pytest.raises(ModelError):
        failing.chat("hi")
    rows = calls(store)
    assert len(rows) == 2
    assert rows[0]["prompt_tokens"] == 10 and rows[0]["cached_tokens"] == 2 and rows[0]["error"] is None
    assert rows[0]["cost_usd"] is None  # fake-model has no price
    assert rows[1]["error"] == "fake failure"


def test_budget_refuses_the_call_after_the_limit(store):
    budget = Budget(tokens=30)
    model = Model("fake", FakeBackend(), store=store, budget=budget)
    model.chat("a")
    model.chat("b")
    with pytest.raises(BudgetExceeded):
        model.chat("c")
    assert budget.calls == 2 and len(calls(store)) == 2


def test_stream_response_only_after_the_end(store):
    model, _ = make(store, answers=["hello world"])
    stream = model.chat("hi", stream=True)
    with pytest.raises(RuntimeError, match="read the stream to the end"):
        stream.response
    assert "".join(c.text for c in stream) == "hello world"
    assert stream.response.text == "hello world"


def test_a_backend_plugin_is_found_through_its_entry_point(tmp_path, monkeypatch, store):
    """A package that declares a `genlab.backends` entry point is reachable by its spec, listed
    by `genlab models`, and checked like any backend; genlab itself is not changed."""
    from genlab.models import registry
    from genlab.models.registry import describe_entries

    source = (
        "from genlab.models import Backend, BackendEntry, Chunk, Usage\n\n"
        "class EchoBackend(Backend):\n"
        "    model_id = 'echo'\n"
        "    free = True\n"
        "    supports_structured_output = False\n"
        "    def execute(self, request, stream):\n"
        "        yield Chunk(0, request.messages[-1].text().upper(), 'stop')\n"
        "        yield Usage(1, 0, 1)\n\n"
        "ENTRY = BackendEntry('echo', 'echo:NAME', 'shouts back', lambda spec: EchoBackend(),\n"
        "                     prefixes=('echo:',), status=lambda: 'ready')\n")
    install_plugin(tmp_path, monkeypatch, "echo_plugin", source, "echo = echo_plugin:ENTRY")
    try:
        model = get_model("echo:any", store=store)
        assert model.chat("hello").text == "HELLO"
        assert ("echo:NAME", "shouts back", "ready") in describe_entries()
        with pytest.raises(ConfigError, match="does not do structured output"):
            model.chat("hi", response_format={"type": "enum", "enum": ["a", "b"]})
    finally:
        registry.plugins.cache_clear()


def test_a_broken_plugin_does_not_break_the_other_backends(tmp_path, monkeypatch, store):
    """A plugin whose import fails made every spec, `local` included, an error."""
    from genlab.models import registry
    from genlab.models.registry import describe_entries

    install_plugin(tmp_path, monkeypatch, "broken_plugin", "import no_such_module_anywhere\n",
                   "broken = broken_plugin:ENTRY")
    try:
        assert get_model("local", store=store).backend.model_id == "smollm2-135m-instruct"
        with pytest.raises(ConfigError, match=r"unknown model spec 'broken:x'; .*the backend plugin 'broken' "
                                              r"\(broken_plugin:ENTRY\) failed to load: No module named "
                                              r"'no_such_module_anywhere'; fix or uninstall it"):
            get_model("broken:x", store=store)
        assert any(status.startswith("error: the backend plugin 'broken'") for _, _, status in describe_entries())
    finally:
        registry.plugins.cache_clear()
