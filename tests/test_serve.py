"""`genlab serve` conformance, driven with the official openai SDK over loopback."""

import json
import urllib.error
import urllib.request

import jsonschema
import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

CHAT = [{"role": "user", "content": "Say hello to Ada."}]


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=served.key, max_retries=0)


def post_raw(served, path: str, body: bytes | dict, key: str | None = None) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(served.base_url + path, data=data, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key or served.key}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_models_list(client):
    assert [m.id for m in client.models.list()] == ["local"]
    assert client.models.retrieve("local").id == "local"


def test_plain_chat(client):
    completion = client.chat.completions.create(model="local", messages=CHAT, max_tokens=20, temperature=0)
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_streamed_chat_with_usage(client):
    stream = client.chat.completions.create(model="local", messages=CHAT, max_tokens=20, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    plain = client.chat.completions.create(model="local", messages=CHAT, max_tokens=20, temperature=0)
    assert text == plain.choices[0].message.content


def test_a_message_may_name_its_participant(client):
    named = [{"role": "system", "content": "Be brief.", "name": "rules"}, {**CHAT[0], "name": "ada"}]
    assert client.chat.completions.create(model="local", messages=named, max_tokens=4).choices[0].message.content


def test_n_three_choices(client):
    completion = client.chat.completions.create(model="local", messages=CHAT, max_tokens=15, n=3,
                                                temperature=1.0, seed=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert len({c.message.content for c in completion.choices}) > 1


def test_stop_sequence(client):
    completion = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
        max_tokens=40, temperature=0, stop=[","])
    assert "," not in completion.choices[0].message.content


def test_seed_reproducible_at_temperature_above_zero(client):
    def ask():
        return client.chat.completions.create(model="local", messages=CHAT, max_tokens=25, temperature=1.2,
                                              seed=1234).choices[0].message.content
    assert ask() == ask()


def test_top_k_as_extra(client):
    completion = client.chat.completions.create(model="local", messages=CHAT, max_tokens=5,
                                                extra_body={"top_k": 1})
    assert completion.choices[0].message.content


def test_penalties(client):
    """Many clients send presence_penalty and frequency_penalty of 0 with every request; a
    penalty is applied by llama.cpp, in OpenAI's range."""
    asked = dict(model="local", max_tokens=12, temperature=0, seed=0)
    repeat = [{"role": "user", "content": "Repeat after me: 1, 1, 1, 1, 1, 1, 1, 1, 1"}]
    plain = client.chat.completions.create(messages=repeat, **asked).choices[0].message.content
    zero = client.chat.completions.create(messages=repeat, presence_penalty=0, frequency_penalty=0, **asked)
    assert zero.choices[0].message.content == plain
    penalised = client.chat.completions.create(messages=repeat, frequency_penalty=2, **asked)
    assert penalised.choices[0].message.content.count("1") < plain.count("1"), (plain, penalised)
    with pytest.raises(openai.BadRequestError, match="invalid 'presence_penalty'"):
        client.chat.completions.create(messages=repeat, presence_penalty=2.5, **asked)


def test_logit_bias(client):
    """OpenAI's logit_bias reaches llama.cpp: +100 on one token id makes every token that
    token; an empty bias is no bias; a bias out of -100..100 is a 400."""
    asked = dict(model="local", messages=CHAT, max_tokens=6, temperature=0, seed=0, logprobs=True)
    plain = client.chat.completions.create(**asked).choices[0]
    assert client.chat.completions.create(logit_bias={}, **asked).choices[0].message.content == plain.message.content
    forced = client.chat.completions.create(logit_bias={"1000": 100}, **asked).choices[0]
    tokens = [t.token for t in forced.logprobs.content]
    assert len(tokens) == 6 and len(set(tokens)) == 1 and forced.message.content != plain.message.content
    with pytest.raises(openai.BadRequestError, match="invalid 'logit_bias.1000'"):
        client.chat.completions.create(logit_bias={"1000": 200}, **asked)


def test_json_schema_output_validates(client):
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 120}},
              "required": ["name", "age"], "additionalProperties": False}
    completion = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "Invent a person."}], max_tokens=100,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    jsonschema.validate(json.loads(completion.choices[0].message.content), schema)


def test_enum_output_is_one_of_the_values(client):
    labels = ["cat", "dog", "fish"]
    for fmt in ({"type": "enum", "enum": labels},
                {"type": "json_schema", "json_schema": {"name": "pet", "schema": {"type": "string", "enum": labels}}}):
        completion = client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "Which pet barks?"}], response_format=fmt)
        content = completion.choices[0].message.content
        assert (json.loads(content) if fmt["type"] == "json_schema" else content) in labels


def test_completions(client):
    completion = client.completions.create(model="local", prompt="Once upon a time", max_tokens=10, temperature=0)
    assert completion.choices[0].text and completion.usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError, match="logprobs are served on /v1/chat/completions only"):
        client.completions.create(model="local", prompt="Once upon a time", max_tokens=10, logprobs=2)


def test_raw_json_validates_against_sdk_types(served):
    status, body = post_raw(served, "/chat/completions", {"model": "local", "messages": CHAT, "max_tokens": 8})
    assert status == 200
    raw = json.loads(body)
    ChatCompletion.model_validate(raw, strict=True)
    assert raw["object"] == "chat.completion" and raw["usage"]["prompt_tokens_details"]["cached_tokens"] >= 0
    status, body = post_raw(served, "/completions", {"model": "local", "prompt": "Hi", "max_tokens": 4})
    Completion.model_validate(json.loads(body), strict=True)


def test_sse_stream_parsed_by_hand(served):
    status, body = post_raw(served, "/chat/completions", {
        "model": "local", "messages": CHAT, "max_tokens": 10, "stream": True,
        "stream_options": {"include_usage": True}})
    assert status == 200
    events = [block for block in body.decode().split("\n\n") if block]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk, strict=True)
        assert chunk["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")


def test_bad_json_is_400(served):
    status, body = post_raw(served, "/chat/completions", b"{not json")
    assert status == 400 and json.loads(body)["error"]["message"] == "could not parse the request body as JSON"


@pytest.mark.parametrize("path, body", [
    ("/chat/completions", b'{"model": "local", "max_tokens": 2, "messages": [{"role": "user", "content": "caf\\ud800"}]}'),
    ("/embeddings", b'{"model": "all-MiniLM-L6-v2", "input": "caf\\ud800"}'),
    ("/audio/speech", b'{"model": "espeak", "input": "caf\\ud800"}'),
])
def test_text_that_is_no_unicode_is_400_naming_it(served, path, body):
    # Valid JSON, but "\ud800" alone is no character: llama.cpp failed on it (a 502 and an
    # incident), and so did the embedder (a 500).
    status, answer = post_raw(served, path, body)
    assert status == 400, answer
    assert json.loads(answer)["error"]["message"].startswith("the text holds '\\ud800', which is not a character")


def test_error_cases_raise_typed_sdk_exceptions(client, served):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="local", messages=None)  # type: ignore[arg-type]
    assert info.value.body["param"] == "messages"
    with pytest.raises(openai.NotFoundError, match="does not exist here"):
        client.chat.completions.create(model="gpt-17", messages=CHAT)
    wrong = openai.OpenAI(base_url=served.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="local", messages=CHAT)
    with pytest.raises(openai.BadRequestError, match="invalid 'temperature'"):
        client.chat.completions.create(model="local", messages=CHAT, temperature=9)
    with pytest.raises(openai.BadRequestError, match="unsupported parameter: 'functions'"):
        client.chat.completions.create(model="local", messages=CHAT, functions=[  # the legacy form of tools
            {"name": "f", "parameters": {"type": "object", "properties": {}}}])
    # What genlab does anyway is taken (clients and agent frameworks send these); anything else is refused.
    done = client.chat.completions.create(model="local", messages=CHAT, max_tokens=2, service_tier="auto",
                                          modalities=["text"], parallel_tool_calls=False)
    assert done.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="unsupported parameter: 'service_tier'"):
        client.chat.completions.create(model="local", messages=CHAT, service_tier="flex")
    with pytest.raises(openai.BadRequestError, match="unsupported parameter: 'modalities'"):
        client.chat.completions.create(model="local", messages=CHAT, modalities=["text", "audio"])
    with pytest.raises(openai.BadRequestError, match="malformed JSON schema"):
        client.chat.completions.create(model="local", messages=CHAT, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objectx"}}})


def test_unknown_route_uses_the_envelope(served):
    status, body = post_raw(served, "/nope", {})
    assert status == 404 and "error" in json.loads(body)


def test_calls_are_logged_in_the_servers_store(served, client):
    before = served.store().execute("SELECT COUNT(*) AS n FROM calls WHERE source='serve'")[0]["n"]
    client.chat.completions.create(model="local", messages=CHAT, max_tokens=3)
    after = served.store().execute("SELECT COUNT(*) AS n FROM calls WHERE source='serve'")[0]["n"]
    assert after == before + 1


def test_budget_exceeded_is_429_insufficient_quota(tmp_path):
    from conftest import start_server

    server = start_server(tmp_path / "home", "--budget-tokens", "1")
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        client.chat.completions.create(model="local", messages=CHAT, max_tokens=2)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="local", messages=CHAT, max_tokens=2)
        assert info.value.body["code"] == "insufficient_quota"
        assert "budget of 1 tokens is spent" in info.value.body["message"]
    finally:
        server.proc.terminate()
        server.proc.wait(10)


def test_concurrent_streams_complete(client):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> str:
        stream = client.chat.completions.create(model="local", messages=[{"role": "user", "content": f"Count to {i}."}],
                                                max_tokens=16, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert chunks[-1].usage.completion_tokens > 0
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(one, range(8)))
    assert all(texts)


def test_logprobs(client):
    completion = client.chat.completions.create(model="local", messages=CHAT, max_tokens=5, logprobs=True,
                                                temperature=0)
    content = completion.choices[0].logprobs.content
    assert len(content) == completion.usage.completion_tokens
    assert "".join(t.token for t in content) == completion.choices[0].message.content
    assert all(t.logprob <= 0 for t in content)
    assert all(t.top_logprobs == [] for t in content)   # none asked for


def test_top_logprobs_streamed_and_not(client):
    """Each token's likeliest alternatives, as an OpenAI client reads them (e.g. the confidence
    of a label)."""
    asked = dict(model="local", messages=CHAT, max_tokens=5, logprobs=True, top_logprobs=2, temperature=0)
    content = client.chat.completions.create(**asked).choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token
                           and t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob for t in content)
    assert all(bytes(a.bytes).decode() == a.token for t in content for a in t.top_logprobs)
    streamed = [t for chunk in client.chat.completions.create(**asked, stream=True)
                if chunk.choices and chunk.choices[0].logprobs for t in chunk.choices[0].logprobs.content]
    assert [t.token for t in streamed] == [t.token for t in content]
    assert all(len(t.top_logprobs) == 2 for t in streamed)
