"""Function calling through `genlab serve`: the real SDK, the embedded model, over loopback."""

import json

import jsonschema
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from genlab.errors import ModelError
from genlab.models.response import Response, Usage
from genlab.serve.tools import REPLY, ToolCall, Tools, _as_text, call_or_reply, take_tools
from tests.test_serve import post_raw

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city"], "additionalProperties": False}
ADD = {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
       "required": ["a", "b"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "add", "description": "Add two numbers", "parameters": ADD}}]
SCHEMAS = {"get_weather": WEATHER, "add": ADD}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
WEATHER_CHOICE = {"type": "function", "function": {"name": "get_weather"}}
DEEP: dict = {"type": "object"}
for _ in range(20):
    DEEP = {"type": "object", "properties": {"inner": DEEP}}


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=served.key, max_retries=0)


def calls_made(served) -> int:
    return served.store().execute("SELECT COUNT(*) AS n FROM calls WHERE source='serve'")[0]["n"]


def test_a_named_function_is_called_with_arguments_that_follow_its_schema(served):
    before = calls_made(served)
    status, body = post_raw(served, "/chat/completions", {
        "model": "local", "messages": ASK, "tools": TOOLS, "tool_choice": WEATHER_CHOICE, "max_tokens": 100})
    assert status == 200
    raw = json.loads(body)
    ChatCompletion.model_validate(raw, strict=True)
    choice = raw["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)
    assert raw["usage"]["completion_tokens"] > 0
    assert calls_made(served) == before + 1   # named: the arguments only, no choice to make


def test_required_picks_one_of_the_tools_and_counts_both_calls(client, served):
    before = calls_made(served)
    completion = client.chat.completions.create(model="local", messages=ASK, tools=TOOLS, tool_choice="required",
                                                max_tokens=100)
    [call] = completion.choices[0].message.tool_calls
    assert call.function.name in SCHEMAS
    jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    assert calls_made(served) == before + 2   # which function, then its arguments
    rows = served.store().execute("SELECT prompt_tokens, completion_tokens FROM calls WHERE source='serve' "
                                  "ORDER BY rowid DESC LIMIT 2")
    assert completion.usage.prompt_tokens == sum(r["prompt_tokens"] for r in rows)
    assert completion.usage.completion_tokens == sum(r["completion_tokens"] for r in rows)


def test_auto_either_calls_a_function_or_replies_in_words(client, served):
    """Which one the embedded model does is its own choice; either way two calls are counted."""
    completion = client.chat.completions.create(model="local", messages=ASK, tools=TOOLS, max_tokens=30)
    choice = completion.choices[0]
    if choice.message.tool_calls:   # its arguments may be cut at 30 tokens, which says "length"
        assert choice.finish_reason in ("tool_calls", "length") and choice.message.content is None
        assert choice.message.tool_calls[0].function.name in SCHEMAS
    else:
        assert choice.message.content and choice.finish_reason in ("stop", "length")
    rows = served.store().execute("SELECT prompt_tokens FROM calls WHERE source='serve' ORDER BY rowid DESC LIMIT 2")
    assert completion.usage.prompt_tokens == sum(r["prompt_tokens"] for r in rows)


def test_tool_choice_none_replies_in_words(client):
    choice = client.chat.completions.create(model="local", messages=ASK, tools=TOOLS, tool_choice="none",
                                            max_tokens=12).choices[0]
    assert choice.message.content and not choice.message.tool_calls


def test_a_streamed_call_is_the_name_then_the_arguments(served):
    status, body = post_raw(served, "/chat/completions", {
        "model": "local", "messages": ASK, "tools": TOOLS, "tool_choice": WEATHER_CHOICE, "max_tokens": 100,
        "stream": True, "stream_options": {"include_usage": True}})
    assert status == 200
    events = [block.removeprefix("data: ") for block in body.decode().split("\n\n") if block]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk, strict=True)
    head = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert head["function"]["name"] == "get_weather" and head["id"].startswith("call_")
    arguments = "".join(c["choices"][0]["delta"].get("tool_calls", [{}])[0].get("function", {}).get("arguments", "")
                        for c in chunks if c["choices"])
    jsonschema.validate(json.loads(arguments), WEATHER)
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_arguments_cut_by_max_tokens_say_length(client):
    choice = client.chat.completions.create(model="local", messages=ASK, tools=TOOLS, tool_choice=WEATHER_CHOICE,
                                            max_tokens=3).choices[0]
    assert choice.finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(choice.message.tool_calls[0].function.arguments)


def test_a_conversation_that_used_tools_goes_on(client):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 18}'}]
    reply = client.chat.completions.create(model="local", messages=history, tools=TOOLS, tool_choice="none",
                                           max_tokens=12)
    assert reply.choices[0].message.content
    assert _as_text(history)[0][1:] == [
        {"role": "assistant", "content": 'Called get_weather({"city":"Paris"})'},
        {"role": "user", "content": 'get_weather returned: {"temperature": 18}'}]


@pytest.mark.parametrize("change, param, says", [
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice", "not among the tools"),
    ({"tools": [{"type": "function", "function": {"name": "two words"}}]}, "tools.0.function.name", "pattern"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}]},
     "tools.0.function.parameters", "malformed JSON schema"),
    ({"tools": [TOOLS[1], TOOLS[1]]}, "tools", "repeated: add"),
    ({"n": 2}, "n", "n must be 1"),
    ({"response_format": {"type": "json_object"}}, "response_format", "cannot be combined with tools"),
    ({"tools": None, "tool_choice": "required"}, "tool_choice", "needs tools"),
    ({"tools": [{"type": "function", "function": {"name": "deep", "parameters": DEEP}}]}, "tools", "nests deeper"),
])
def test_bad_tools_are_a_400_naming_the_field(client, change, param, says):
    asked = {"model": "local", "messages": ASK, "tools": TOOLS, **change}
    with pytest.raises(openai.BadRequestError, match=says) as info:
        client.chat.completions.create(**{k: v for k, v in asked.items() if v is not None})
    assert info.value.body["param"] == param


def test_plain_completions_take_no_tools(client):
    with pytest.raises(openai.BadRequestError, match="unsupported parameter: 'tools'"):
        client.completions.create(model="local", prompt="Hi", max_tokens=2, extra_body={"tools": TOOLS})


class FakeChoosingModel:
    """Fault injection for the control logic: a model whose enum answer is fixed."""

    name = "fake"

    def __init__(self, label: str):
        self.label, self.requests = label, []

    def execute(self, request):
        self.requests.append(request)
        text = self.label if request.response_format.type == "enum" else '{"a": 1, "b": 2}'
        return Response.from_dict({"id": "x", "model": "fake", "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 10, "completion_tokens": 2}})


def test_a_reply_in_words_costs_the_choice_and_asks_nothing_more():
    from genlab.models import Request

    request = Request(messages=ASK, stop=["\n"])
    model = FakeChoosingModel(REPLY)
    assert call_or_reply(model, request, Tools(tools=TOOLS)) == Usage(10, 0, 2)
    [choice] = model.requests
    assert choice.response_format.enum == ["get_weather", "add", REPLY] and choice.stop is None
    assert choice.messages[0].role == "system" and "- add: Add two numbers" in choice.messages[0].content
    model = FakeChoosingModel("add")
    call = call_or_reply(model, request, Tools(tools=TOOLS, tool_choice="required"))
    assert (call.name, call.arguments, call.usage) == ("add", '{"a": 1, "b": 2}', Usage(20, 0, 4))
    assert model.requests[0].response_format.enum == ["get_weather", "add"]
    assert model.requests[1].response_format.json_schema.schema_ == ADD
    with pytest.raises(ModelError, match="chose 'subtract', which is none of the functions"):
        call_or_reply(FakeChoosingModel("subtract"), request, Tools(tools=TOOLS, tool_choice="required"))


def test_under_auto_a_call_already_made_is_a_reply_in_words():
    """An agent loop on the embedded model called the same function forever (1 of 80 loops
    ended within 5 requests in bench/serve_tools.py); the result is in the conversation already."""
    from genlab.models import Request

    earlier = {"id": "call_9", "type": "function", "function": {"name": "add", "arguments": '{"b": 2, "a": 1}'}}
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [earlier]},
               {"role": "tool", "tool_call_id": "call_9", "content": "3"}]
    body, tools = take_tools({"messages": history, "tools": TOOLS})
    assert tools.called == {("add", '{"a": 1, "b": 2}')}         # key order does not matter
    request = Request(messages=body["messages"])
    assert call_or_reply(FakeChoosingModel("add"), request, tools) == Usage(20, 0, 4)
    assert isinstance(call_or_reply(FakeChoosingModel("add"), request, tools, stop_repeats=False), ToolCall)
    required = tools.model_copy(update={"tool_choice": "required"})   # the client asked for a call: it gets one
    assert isinstance(call_or_reply(FakeChoosingModel("add"), request, required), ToolCall)
    other = tools.model_copy(update={"called": frozenset({("add", '{"a": 1, "b": 5}')})})
    assert isinstance(call_or_reply(FakeChoosingModel("add"), request, other), ToolCall)
