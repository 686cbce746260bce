"""Function calling for any served model, made of structured output.

OpenAI clients send ``tools`` and ``tool_choice``. genlab's models do not call functions
themselves, so the server asks the model in at most two steps that every chat backend can
take (enum mode scores each name on llama.cpp and is a JSON schema on endpoints):

    which function?  enum mode over the functions' names, and "reply in words" under
                     tool_choice "auto"; skipped when the choice names one, or "required"
                     leaves one
    its arguments    structured output under that function's ``parameters`` schema

A "reply in words" is then an ordinary answer. The conversation's earlier calls and results
reach the model as text, so a conversation that used tools can go on with any model.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genlab.errors import ApiError, ModelError
from genlab.models import Model, Request
from genlab.models.request import EnumFormat, JsonSchemaFormat, JsonSchemaSpec, Message, checked_json_schema
from genlab.models.response import Usage
from genlab.serve.guard import invalid_request

#: The choice beside the functions' names under tool_choice "auto". OpenAI's function names
#: are letters, digits, _ and -, so no function can be called this.
REPLY = "reply in words"
#: What a function without ``parameters`` takes, as OpenAI reads it.
NO_PARAMETERS = {"type": "object", "properties": {}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Function(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    _valid_parameters = field_validator("parameters")(lambda v: v if v is None else checked_json_schema(v))

    def menu_line(self) -> str:
        return f"- {self.name}" + (f": {self.description}" if self.description else "")


class Tool(_Strict):
    type: Literal["function"]
    function: Function


class FunctionName(_Strict):
    name: str


class NamedChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


class Tools(_Strict):
    """A chat request's ``tools`` and ``tool_choice``, and the calls its conversation made."""

    tools: list[Tool] = Field(min_length=1, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedChoice = "auto"
    called: frozenset[tuple[str, str]] = frozenset()   # (name, arguments as canonical JSON)

    def candidates(self) -> list[Function]:
        """The functions the model may call; empty under tool_choice "none"."""
        if self.tool_choice == "none":
            return []
        if isinstance(self.tool_choice, NamedChoice):
            return [t.function for t in self.tools if t.function.name == self.tool_choice.function.name]
        return [t.function for t in self.tools]


@dataclass
class ToolCall:
    """The model's call of one function: OpenAI's ``tool_calls[0]``, and what it cost."""

    name: str
    arguments: str       # JSON text, as OpenAI sends it
    finish_reason: str   # "tool_calls", or "length" when max_tokens cut the arguments
    usage: Usage
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    def json(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def take_tools(body: dict) -> tuple[dict, Tools | None]:
    """Split a chat body into what `Request` reads and its tools (None when it sends none).

    Earlier calls and their results in ``messages`` become text the model can read: an
    assistant's ``tool_calls`` as "Called NAME(ARGUMENTS)", a ``tool`` message as a user's
    "NAME returned: RESULT" (a tool message without its call is refused by every endpoint)."""
    rest = {k: v for k, v in body.items() if k not in ("tools", "tool_choice")}
    called: set[tuple[str, str]] = set()
    if isinstance(body.get("messages"), list):
        rest["messages"], called = _as_text(body["messages"])
    if body.get("tools") is None:
        if body.get("tool_choice") not in (None, "none", "auto"):
            raise ApiError(400, "tool_choice needs tools; send the functions in 'tools'", param="tool_choice")
        return rest, None
    try:
        tools = Tools(tools=body["tools"], tool_choice=body.get("tool_choice") or "auto", called=called)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    names = [t.function.name for t in tools.tools]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ApiError(400, f"function names must be distinct; repeated: {', '.join(repeated)}", param="tools")
    if isinstance(tools.tool_choice, NamedChoice) and tools.tool_choice.function.name not in names:
        raise ApiError(400, f"tool_choice names '{tools.tool_choice.function.name}', which is not among the tools "
                       f"({', '.join(names)})", param="tool_choice")
    if tools.candidates():
        for clash in ("response_format", "grammar", "logprobs"):
            if rest.get(clash):
                raise ApiError(400, f"'{clash}' cannot be combined with tools here (a call's arguments follow "
                               "its function's parameters); send tool_choice \"none\" or drop it", param=clash)
        if (rest.get("n") or 1) != 1:
            raise ApiError(400, "n must be 1 with tools (one call is made at a time)", param="n")
    return rest, tools


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except ValueError:
        return arguments


def _as_text(messages: list) -> tuple[list, set[tuple[str, str]]]:
    """The messages with calls and results as text, and the calls made: (name, canonical arguments)."""
    names: dict[str, str] = {}
    called: set[tuple[str, str]] = set()
    plain = []
    for message in messages:
        if not isinstance(message, dict):
            plain.append(message)
            continue
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and isinstance(calls, list):
            said = [message["content"]] if isinstance(message.get("content"), str) and message["content"] else []
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    names[str(call.get("id"))] = str(function.get("name"))
                    called.add((str(function.get("name")), _canonical(str(function.get("arguments", "")))))
                    said.append(f"Called {function.get('name')}({function.get('arguments', '')})")
            message = {k: v for k, v in message.items() if k != "tool_calls"} | {"content": "\n".join(said)}
        elif message.get("role") == "tool" and "tool_call_id" in message:
            content = message.get("content")
            result = "".join(p.get("text", "") for p in content if isinstance(p, dict)) \
                if isinstance(content, list) else str(content)
            message = {"role": "user",
                       "content": f"{names.get(str(message['tool_call_id']), 'The function')} returned: {result}"}
        plain.append(message)
    return plain, called


def call_or_reply(model: Model, request: Request, tools: Tools, *, stop_repeats: bool = True) -> ToolCall | Usage:
    """On a worker thread: the model's call of one of ``tools.candidates()``, or, when it
    chose to reply in words, what that choice cost (the reply is then ``request`` itself).

    Under tool_choice "auto" a call the conversation already made, with the same arguments,
    is a reply in words (``stop_repeats``): its result is already there, and a model that
    cannot tell it has what it needs (the embedded one) would otherwise call it forever."""
    functions = tools.candidates()
    usage = Usage()
    if len(functions) > 1 or tools.tool_choice == "auto":
        menu = "You can call these functions:\n" + "\n".join(f.menu_line() for f in functions)
        labels = [f.name for f in functions] + ([REPLY] if tools.tool_choice == "auto" else [])
        # The client's max_tokens bounds what it is sent, not this choice, which a short limit would cut.
        chosen = model.execute(_asking(request, menu, EnumFormat(type="enum", enum=labels), max_tokens=None))
        usage = chosen.usage
        if chosen.text == REPLY:
            return usage
        functions = [f for f in functions if f.name == chosen.text]
        if not functions:   # an endpoint that does not hold to the schema
            raise ModelError(f"{model.name} chose {chosen.text[:80]!r}, which is none of the functions")
    function = functions[0]
    what = f" ({function.description})" if function.description else ""
    schema = JsonSchemaSpec(name=function.name, schema=function.parameters or NO_PARAMETERS)
    written = model.execute(_asking(request, f"Call the function {function.name}{what}: write its arguments "
                                    "as a JSON object.", JsonSchemaFormat(type="json_schema", json_schema=schema)))
    choice = written.choices[0]
    try:
        arguments = json.dumps(json.loads(choice.text), ensure_ascii=False)  # compact, as OpenAI sends them
    except ValueError:
        arguments = choice.text   # cut by max_tokens: sent as written, with finish_reason "length"
    finish = "length" if choice.finish_reason == "length" else "tool_calls"
    if stop_repeats and tools.tool_choice == "auto" and (function.name, _canonical(arguments)) in tools.called:
        return usage + written.usage
    return ToolCall(function.name, arguments, finish, usage + written.usage)


def _asking(request: Request, instruction: str, answer_format: EnumFormat | JsonSchemaFormat,
            **changes: Any) -> Request:
    """``request`` with ``instruction`` as a first system message and its answer in ``answer_format``;
    without stop sequences, which could cut a name or the JSON short."""
    messages = [Message(role="system", content=instruction), *(request.messages or ())]
    return request.model_copy(update={"messages": messages, "response_format": answer_format, "stop": None,
                                      **changes})
