"""genlab's OpenAI-compatible backend, tested against `genlab serve` itself (a real
HTTP server and the real SDK), with a real flaky proxy for retries."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import forward, free_port
from genlab.errors import ConfigError, ModelError, ModelUnreachable, RequestRejected
from genlab.models import get_model


@pytest.fixture
def remote(served, store, monkeypatch):
    monkeypatch.setenv("GENLAB_API_KEY", served.key)
    return get_model(f"{served.base_url}#local", store=store, source="test")


class FlakyProxy:
    """Answers the first ``failures`` requests with 429 then 503s, then forwards upstream."""

    def __init__(self, upstream: str, failures: int):
        self.upstream, self.failures, self.requests = upstream, failures, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.requests += 1
                if proxy.requests <= proxy.failures:
                    status = 429 if proxy.requests == 1 else 503
                    payload = b'{"error": {"message": "try later", "type": "x", "param": null, "code": null}}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("retry-after-ms", "10")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                forward(self, proxy.upstream, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_chat_stream_and_usage_through_the_sdk(remote, store):
    response = remote.chat("Say hi.", max_tokens=10, temperature=0)
    assert response.text and response.usage.completion_tokens > 0
    stream = remote.chat("Say hi.", max_tokens=10, temperature=0, stream=True)
    assert "".join(c.text for c in stream) == response.text
    assert stream.response.usage.completion_tokens == response.usage.completion_tokens
    assert stream.response.usage.cached_tokens > 0  # the server's prompt cache, reported through
    assert len(store.execute("SELECT * FROM calls WHERE source='test'")) == 2


def test_native_n_top_k_and_completions(remote):
    response = remote.chat("Name a bird.", max_tokens=8, n=2, temperature=1, seed=5, top_k=40)
    assert len(response.choices) == 2
    assert remote.complete("One, two,", max_tokens=4, temperature=0).text


def test_penalties_and_top_logprobs_travel_through_the_sdk(remote):
    repeat = "Repeat after me: 1, 1, 1, 1, 1, 1, 1, 1, 1"
    plain = remote.chat(repeat, max_tokens=12, temperature=0, seed=0).text
    penalised = remote.chat(repeat, max_tokens=12, temperature=0, seed=0, frequency_penalty=2).text
    assert penalised.count("1") < plain.count("1"), (plain, penalised)
    tokens = remote.chat("Say yes.", max_tokens=4, temperature=0, logprobs=True, top_logprobs=2).choices[0].logprobs
    assert tokens and all(len(t["top_logprobs"]) == 2 and t["top_logprobs"][0]["token"] == t["token"] for t in tokens)


def test_a_grammar_travels_to_a_llama_cpp_style_server(remote, served):
    # genlab serve reads `grammar` from the body as llama.cpp's server does: every answer follows it.
    grammar = 'root ::= " " ("red" | "green" | "blue") " fish"'
    for temperature in (0, 1.5):
        completion = remote.complete("My favourite animal is a", grammar=grammar, max_tokens=8,
                                     temperature=temperature)
        assert completion.text in (" red fish", " green fish", " blue fish"), completion.text
    chat = remote.chat("Pick a colour.", grammar=grammar, max_tokens=8, n=3, temperature=1.5, seed=3)
    assert all(text in (" red fish", " green fish", " blue fish") for text in chat.texts)


def test_media_parts_travel_to_the_endpoint_which_decides(remote, store):
    # An endpoint may take images (a vision model); this one serves a text model and says so.
    image = [{"type": "text", "text": "What is this?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    with pytest.raises(RequestRejected, match="reads text only, not image_url content parts"):
        remote.chat([{"role": "user", "content": image}], max_tokens=3)
    local = get_model("local", store=store)
    with pytest.raises(ConfigError, match="reads text only, not image_url content parts") as info:
        local.chat([{"role": "user", "content": image}], max_tokens=3)
    assert info.value.param == "messages"
    text_parts = local.chat([{"role": "user", "content": image[:1]}], max_tokens=3)
    assert text_parts.usage.completion_tokens > 0


def test_enum_mode_over_json_schema(remote):
    response = remote.chat("Is ice cold?", response_format={"type": "enum", "enum": ["yes", "no"]})
    assert response.text in ("yes", "no")


def test_retries_429_then_503_then_succeeds(served, store, monkeypatch):
    monkeypatch.setenv("GENLAB_API_KEY", served.key)
    proxy = FlakyProxy(f"http://127.0.0.1:{served.port}", failures=2)
    try:
        model = get_model(f"{proxy.url}/v1#local", store=store)
        assert model.chat("Hello", max_tokens=4).text
        assert proxy.requests == 3
    finally:
        proxy.close()


def test_retries_run_out_with_a_clear_error(served, store, monkeypatch):
    monkeypatch.setenv("GENLAB_API_KEY", served.key)
    monkeypatch.setenv("GENLAB_MAX_RETRIES", "2")
    proxy = FlakyProxy(f"http://127.0.0.1:{served.port}", failures=100)
    try:
        model = get_model(f"{proxy.url}/v1#local", store=store)
        with pytest.raises(ModelError, match="failed with HTTP 503 after retries: try later"):
            model.chat("Hello", max_tokens=4)
        assert proxy.requests == 3
    finally:
        proxy.close()
    assert store.execute("SELECT error FROM calls")[0]["error"].startswith("http://127.0.0.1")


def test_wrong_key_and_unknown_model(served, store, monkeypatch):
    monkeypatch.setenv("GENLAB_API_KEY", "wrong")
    with pytest.raises(RequestRejected, match="rejected the API key") as info:
        get_model(f"{served.base_url}#local", store=store).chat("hi")
    assert info.value.http_status == 401
    monkeypatch.setenv("GENLAB_API_KEY", served.key)
    with pytest.raises(RequestRejected, match="has no model 'gpt-17'"):
        get_model(f"{served.base_url}#gpt-17", store=store).chat("hi")


def test_unreachable_url(store, monkeypatch):
    monkeypatch.setenv("GENLAB_MAX_RETRIES", "0")
    with pytest.raises(ModelUnreachable, match="cannot reach http://127.0.0.1:.*check the URL"):
        get_model(f"http://127.0.0.1:{free_port()}/v1#m", store=store).chat("hi")


def test_missing_key_and_unsupported_options_fail_before_any_request(store, monkeypatch):
    with pytest.raises(ConfigError, match="GEMINI_API_KEY is not set"):
        get_model("gemini:gemini-2.5-flash", store=store)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    openai_model = get_model("openai:gpt-4o-mini", store=store)
    with pytest.raises(ConfigError, match="does not take top_k"):
        openai_model.chat("hi", top_k=3)
    with pytest.raises(ConfigError, match="does not take a grammar .*; drop it"):
        openai_model.chat("hi", grammar='root ::= "yes"')
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    with pytest.raises(ConfigError, match="no plain completions endpoint"):
        get_model("gemini:gemini-2.5-flash", store=store).complete("hi")
    assert store.execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0


def test_spec_errors():
    with pytest.raises(ConfigError, match="unknown model spec 'nope:x'"):
        get_model("nope:x")
    with pytest.raises(ConfigError, match="no model name in the URL spec"):
        get_model("http://127.0.0.1:1/v1")
