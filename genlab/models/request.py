"""What a caller may ask a model for, validated once at the edge.

A `Request` is the OpenAI chat/completions request shape that every genlab backend
understands, plus one genlab form of structured output: **enum mode**
(``{"type": "enum", "enum": ["yes", "no"]}``), whose answer is exactly one of the
strings. Inside genlab a `Request` is trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal, Union

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from genlab.io import unicode_problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    # A string, or OpenAI content parts ([{"type": "text", "text": ...}, ...]).
    content: str | list[dict[str, Any]] | None = ""
    # OpenAI's name of the participant (agent frameworks send it): passed on to endpoints and
    # llama.cpp; models on transformers read the role and content only.
    name: str | None = None

    @field_validator("content")
    @classmethod
    def _text_parts_hold_text(cls, content: Any) -> Any:
        # A backend reads a text part's "text" (llama.cpp failed on one without it, a 502).
        for part in content if isinstance(content, list) else ():
            kind = part.get("type")
            if kind in ("text", "refusal") and not isinstance(part.get(kind), str):
                raise ValueError(f"a {kind} part holds its {kind}: {{\"type\": \"{kind}\", \"{kind}\": \"...\"}}")
            if not isinstance(kind, str):
                raise ValueError("each content part names its type: {\"type\": \"text\", \"text\": \"...\"}")
        return content

    def media_parts(self) -> list[str]:
        """The types of the content parts that are not text (image_url, input_audio…); an
        assistant's refusal part is text too."""
        parts = self.content if isinstance(self.content, list) else []
        return [str(p.get("type")) for p in parts if p.get("type") not in ("text", "refusal")]

    def text(self) -> str:
        """Return the message's text, joining text parts."""
        if isinstance(self.content, list):
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


#: Bounds that no value meets when the first is above the second. Refused here because
#: llama.cpp's grammar for a string whose minLength is above its maxLength grows without end
#: (4 GB in 10 s, then the kernel kills the process: a whole `genlab serve` for one request).
BOUNDS = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"),
          ("minimum", "maximum"))
#: Keywords whose values are data, not schemas: not searched for bounds.
DATA_KEYWORDS = {"enum", "const", "default", "examples"}
#: Keywords whose values map names to schemas (a property may be named "enum").
SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
#: A GBNF repetition {m,n} (groups: m, n), after the literals, character classes and comments
#: that may hold braces of their own (those matches have no groups).
GBNF_REPETITION = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|#[^\n]*|\{\s*(\d+)\s*,\s*(\d+)\s*\}')


def checked_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or a ValueError naming where it is malformed or no value can match it (for
    pydantic validators)."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValueError(f"malformed JSON schema at {where}: {exc.message}") from None
    except RecursionError:    # jsonschema checks a schema by recursion, a few frames per level
        raise ValueError("the JSON schema is nested too deeply to check; flatten it") from None
    stack: list[tuple[Any, list[str]]] = [(schema, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend((item, [*path, str(i)]) for i, item in enumerate(node))
        if not isinstance(node, dict):
            continue
        for low, high in BOUNDS:
            if all(isinstance(node.get(key), (int, float)) for key in (low, high)) and node[low] > node[high]:
                raise ValueError(f"JSON schema at {'/'.join(path) or '(root)'}: {low} {node[low]} is more than {high} "
                                 f"{node[high]}, so nothing can match; fix one of them")
        for key, value in node.items():
            if key in SCHEMA_MAPS and isinstance(value, dict):
                stack.extend((schema, [*path, key, name]) for name, schema in value.items())
            elif key not in DATA_KEYWORDS:
                stack.append((value, [*path, key]))
    return schema


class JsonSchemaSpec(_Strict):
    name: str = "output"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _valid_schema = field_validator("schema_")(checked_json_schema)


class JsonSchemaFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


class EnumFormat(_Strict):
    """genlab's enum mode: the answer is exactly one of ``enum``."""

    type: Literal["enum"]
    enum: list[str] = Field(min_length=1)

    @field_validator("enum")
    @classmethod
    def _distinct_nonempty(cls, labels: list[str]) -> list[str]:
        if any(not label.strip() for label in labels):
            raise ValueError("enum labels must be non-empty strings")
        dupes = sorted({label for label in labels if labels.count(label) > 1})
        if dupes:
            raise ValueError(f"enum labels must be distinct; repeated: {', '.join(dupes)}")
        return labels

    def as_json_schema(self) -> JsonSchemaFormat:
        """Return the portable form for endpoints without enum mode (Gemini, OpenAI…)."""
        schema = {"type": "object", "properties": {"label": {"type": "string", "enum": self.enum}},
                  "required": ["label"], "additionalProperties": False}
        return JsonSchemaFormat(type="json_schema",
                                json_schema=JsonSchemaSpec(name="label", schema=schema, strict=True))


ResponseFormat = Annotated[
    Union[TextFormat, JsonObjectFormat, JsonSchemaFormat, EnumFormat], Field(discriminator="type")
]


class Request(_Strict):
    """One model request: chat (``messages``) or plain completion (``prompt``)."""

    messages: list[Message] | None = None
    prompt: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    # OpenAI's penalties on tokens already in the output: once each, or per occurrence.
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    # OpenAI's logit_bias: added to a token's logit before sampling (-100 bans it, 100 forces
    # it); the keys are the model's token ids, which differ from model to model.
    logit_bias: dict[Annotated[int, Field(ge=0)], Annotated[float, Field(ge=-100, le=100)]] | None = None
    seed: int | None = Field(None, ge=-2**63, le=2**63 - 1)   # OpenAI's range: 64 bits, signed
    n: int = Field(1, ge=1, le=64)
    stop: list[str] | None = Field(None, max_length=16)
    max_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None   # per-token log-probabilities of the chosen tokens (chat only)
    top_logprobs: int | None = Field(None, ge=0, le=20)   # and of this many likeliest tokens at each step
    # genlab's extension, as in llama.cpp's server: a GBNF grammar every choice must follow.
    grammar: str | None = Field(None, min_length=1)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, stop: Any) -> Any:
        return [stop] if isinstance(stop, str) else stop

    @field_validator("top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias")
    @classmethod
    def _zero_is_unset(cls, value: Any) -> Any:
        # 0 (or {}) asks for what leaving the field out does (many clients send penalties of 0),
        # so it keys the cache alike and needs no capability; llama.cpp drops logprobs on top 0.
        return value or None

    @field_validator("grammar")
    @classmethod
    def _repetitions_in_order(cls, grammar: str | None) -> str | None:
        # llama.cpp's parser expands x{m,n}; with m above n it grows without end (3 GB in
        # seconds, then the kernel kills the process), as for the schema bounds above.
        for match in GBNF_REPETITION.finditer(grammar or ""):
            low, high = match.group(1, 2)
            if low and high and int(low) > int(high):
                raise ValueError(f"the grammar repeats {match.group(0)}, at least {low} and at most {high} times; "
                                 "swap them")
        return grammar

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, stop: list[str] | None) -> list[str] | None:
        if stop and "" in stop:
            raise ValueError("a stop sequence must not be empty (it would end every answer at once)")
        return stop

    @model_validator(mode="after")
    def _one_input(self) -> "Request":
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' (chat) or 'prompt' (completion)")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' is empty; add at least one message")
        if self.logprobs and self.messages is None:
            raise ValueError("logprobs are available for chat requests ('messages') only")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if self.grammar is not None and self.response_format is not None \
                and self.response_format.type != "text":
            raise ValueError("give either 'grammar' or a structured 'response_format', not both")
        if problem := unicode_problem(self.payload()):
            raise ValueError(problem)
        return self

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def deterministic(self) -> bool:
        """True when the same request always gives the same output (greedy or seeded)."""
        return self.temperature == 0 or self.seed is not None

    def payload(self) -> dict[str, Any]:
        """Return the request as an OpenAI-shaped dict, without unset fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def key(self, model_id: str) -> str:
        """Return a hash of everything that affects the output (cache and log key)."""
        canonical = json.dumps({"model": model_id, **self.payload()}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()
