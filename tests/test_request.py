"""Request validation at the edge: the exact errors a user sees."""

import pytest

from genlab.errors import ConfigError
from genlab.models import build_request
from genlab.models.local import enum_grammar

CHAT = [{"role": "user", "content": "hi"}]


def error_of(**fields) -> str:
    with pytest.raises(ConfigError) as info:
        build_request(**fields)
    return str(info.value)


def test_valid_request_keeps_only_set_fields():
    request = build_request(messages=CHAT, temperature=0.5, stop="END")
    assert request.payload() == {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.5,
                                 "n": 1, "stop": ["END"]}


def test_messages_and_prompt_are_exclusive():
    expected = "invalid request: give exactly one of 'messages' (chat) or 'prompt' (completion)"
    assert error_of(messages=CHAT, prompt="x") == expected
    assert error_of() == expected


def test_bounds_are_named():
    assert error_of(messages=CHAT, temperature=3) == "invalid request: temperature: Input should be less than or equal to 2"
    assert error_of(messages=CHAT, n=0) == "invalid request: n: Input should be greater than or equal to 1"
    assert "messages' is empty" in error_of(messages=[])
    assert error_of(messages=CHAT, seed=2**64) == ("invalid request: seed: Input should be less than or equal to "
                                                   "9223372036854775807")   # a traceback from torch on hf:


def test_enum_labels_validated():
    assert error_of(messages=CHAT, response_format={"type": "enum", "enum": ["a", "a"]}) == (
        "invalid request: response_format.enum: enum labels must be distinct; repeated: a")
    assert "at least 1 item" in error_of(messages=CHAT, response_format={"type": "enum", "enum": []})
    assert "non-empty" in error_of(messages=CHAT, response_format={"type": "enum", "enum": ["ok", " "]})


def test_malformed_schema_rejected_before_any_call():
    message = error_of(messages=CHAT, response_format={"type": "json_schema",
                                                        "json_schema": {"name": "x", "schema": {"type": "objectx"}}})
    assert message.startswith("invalid request: response_format.json_schema.schema: malformed JSON schema at type:")


@pytest.mark.parametrize("schema, where, says", [
    ({"type": "string", "minLength": 3, "maxLength": 2}, "(root)", "minLength 3 is more than maxLength 2"),
    ({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string", "minLength": 9,
                                                                           "maxLength": 1}}}},
     "properties/a/items", "minLength 9 is more than maxLength 1"),
    ({"type": "array", "minItems": 2, "maxItems": 1}, "(root)", "minItems 2 is more than maxItems 1"),
    ({"anyOf": [{"type": "integer", "minimum": 5, "maximum": 2}]}, "anyOf/0", "minimum 5 is more than maximum 2"),
    ({"type": "object", "properties": {"enum": {"type": "string", "minLength": 4, "maxLength": 0}}},
     "properties/enum", "minLength 4 is more than maxLength 0"),          # a property, not the keyword
])
def test_a_schema_nothing_can_match_is_refused_by_name(schema, where, says):
    # The first of these made llama.cpp's grammar grow past 4 GB in 10 s, until the kernel
    # killed the process: one request took down a whole genlab serve. It is never sent to a
    # model here, only validated.
    message = error_of(messages=CHAT, response_format={"type": "json_schema", "json_schema": {"name": "x",
                                                                                             "schema": schema}})
    assert message == (f"invalid request: response_format.json_schema.schema: JSON schema at {where}: {says}, "
                       "so nothing can match; fix one of them")



def test_a_schema_too_deep_to_check_is_refused_by_name():
    # jsonschema checks a schema by recursion: 400 levels of items ended `genlab prompt
    # --json-schema` in a RecursionError traceback (genlab serve refuses 16 levels before this).
    schema: dict = {"type": "string"}
    for _ in range(400):
        schema = {"type": "array", "items": schema}
    message = error_of(messages=CHAT, response_format={"type": "json_schema", "json_schema": {"name": "x",
                                                                                             "schema": schema}})
    assert message == ("invalid request: response_format.json_schema.schema: the JSON schema is nested too deeply "
                       "to check; flatten it")

def test_a_grammar_repetition_whose_least_is_above_its_most_is_refused():
    # Sent to llama.cpp, 'root ::= "a"{3,1}' grew past 3 GB in seconds and the kernel killed
    # genlab serve; braces inside literals, character classes and comments are not repetitions.
    assert error_of(prompt="x", grammar='root ::= "a"{3,1}') == (
        "invalid request: grammar: the grammar repeats {3,1}, at least 3 and at most 1 times; swap them")
    assert "repeats { 10 , 2 }" in error_of(prompt="x", grammar='root ::= "\\"" ("a"{ 10 , 2 })')
    for fine in ('root ::= "a{3,1}"', "root ::= [{3,1}]", 'root ::= "a" # {3,1}\n', 'root ::= "a"{1,3}'):
        assert build_request(prompt="x", grammar=fine).grammar == fine


def test_bounds_inside_data_are_not_schemas():
    schema = {"type": "object", "const": {"minLength": 5, "maxLength": 1}, "enum": [{"minItems": 3, "maxItems": 0}]}
    assert build_request(messages=CHAT, response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": schema}}).response_format.json_schema.schema_ == schema


def test_a_text_part_without_its_text_is_refused():
    text_only = [{"role": "user", "content": [{"type": "text"}]}]
    assert error_of(messages=text_only) == ('invalid request: messages.0.content: a text part holds its text: '
                                            '{"type": "text", "text": "..."}')
    assert "each content part names its type" in error_of(messages=[{"role": "user", "content": [{"text": "x"}]}])


def test_unknown_field_refused():
    assert "extra_thing: Extra inputs are not permitted" in error_of(messages=CHAT, extra_thing=1)


def test_cache_key_covers_every_output_affecting_field():
    base = build_request(messages=CHAT, temperature=0)
    assert base.key("m") == build_request(messages=CHAT, temperature=0).key("m")
    assert base.key("m") != base.key("other-model")
    for change in ({"temperature": 0.1}, {"seed": 1}, {"max_tokens": 5}, {"stop": ["x"]}, {"top_k": 3},
                   {"response_format": {"type": "enum", "enum": ["a", "b"]}}):
        assert build_request(messages=CHAT, **{"temperature": 0, **change}).key("m") != base.key("m"), change


def test_deterministic_only_when_greedy_or_seeded():
    assert build_request(messages=CHAT, temperature=0).deterministic
    assert build_request(messages=CHAT, temperature=1, seed=3).deterministic
    assert not build_request(messages=CHAT, temperature=1).deterministic
    assert not build_request(messages=CHAT).deterministic


def test_enum_as_json_schema_for_endpoints_without_enum_mode():
    fmt = build_request(messages=CHAT, response_format={"type": "enum", "enum": ["x", "y"]}).response_format
    schema = fmt.as_json_schema().json_schema.schema_
    assert schema["properties"]["label"]["enum"] == ["x", "y"] and schema["required"] == ["label"]


def test_enum_grammar_escapes_quotes_backslashes_and_newlines():
    assert enum_grammar(['say "hi"', "a\\b", "two\nlines"]) == (
        'root ::= "say \\"hi\\"" | "a\\\\b" | "two\\nlines"')
