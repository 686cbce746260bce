"""Function calling on the embedded model: arguments under the function's schema against free text.

`genlab serve` answers ``tools`` with structured output (`genlab.serve.tools`): enum mode to
choose a function, the function's ``parameters`` schema for its arguments. This measures,
with the server's own code and the same instruction either way:

* arguments: 60 requests that name the function (30 weather questions about 15 cities, 30
  additions of two numbers, each in three wordings), with the schema (genlab) and without
  it, the JSON then read from the free text as a client would. A call is valid when its
  arguments parse and follow the schema, right when they also hold the question's city or
  numbers;
* choosing: the same 60 with tool_choice "required" over both functions (right function?),
  and 20 questions that need neither with tool_choice "auto" (did it reply in words?);
* agent loops: the 80 under "auto" as a client's loop runs them (each call answered with a
  fixed result, then asked again), at most 5 requests: how many end in a reply in words,
  with the server's rule that a repeated call is a reply (``stop_repeats``) and without it.

Nothing here was tuned: the instruction is the server's, written before this ran.

    .venv/bin/python bench/serve_tools.py [--model local]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
import random
import re
import time

import jsonschema
from common import write
from scipy.stats import binomtest

from genlab.models import Request, get_model
from genlab.serve.tools import ToolCall, Tools, call_or_reply, take_tools

WEATHER = {"type": "object", "properties": {"city": {"type": "string"},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city"], "additionalProperties": False}
ADD = {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
       "required": ["a", "b"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "add", "description": "Add two numbers", "parameters": ADD}}]
CITIES = ["Paris", "Tokyo", "Lagos", "Lima", "Oslo", "Cairo", "Denver", "Hanoi", "Quito", "Perth", "Dublin",
          "Nairobi", "Seoul", "Madrid", "Toronto"]
WEATHER_ASKED = ["What's the weather in {}?", "Is it raining in {} right now?", "How warm is it in {} today?"]
ADD_ASKED = ["What is {} plus {}?", "Add {} and {}.", "I have {} apples and buy {} more. How many now?"]
NEITHER = ["Tell me a joke.", "Write a haiku about autumn.", "Who are you?", "Translate 'good morning' into French.",
           "Give me a synonym for happy.", "What is a noun?", "Say hello to Ada.", "Name a primary colour.",
           "Write one sentence about dogs.", "What does HTML stand for?", "Suggest a name for a cat.",
           "Spell the word 'cat' backwards.", "What is the opposite of cold?", "Describe the sea in five words.",
           "Give me a tip for sleeping well.", "What rhymes with moon?", "Thank you!",
           "Summarise: the meeting moved to Friday.", "Is a tomato a fruit?", "Recommend a board game."]


def items() -> list[dict]:
    rng = random.Random(0)
    weather = [{"function": "get_weather", "question": form.format(city), "expected": {"city": city}}
               for city in CITIES[:10] for form in WEATHER_ASKED]
    pairs = [(rng.randint(2, 99), rng.randint(2, 99)) for _ in range(10)]
    add = [{"function": "add", "question": form.format(a, b), "expected": {"a": a, "b": b}}
           for a, b in pairs for form in ADD_ASKED]
    return weather + add


def judged(arguments: str, item: dict) -> tuple[bool, bool]:
    """(valid, right) for arguments written as text."""
    try:
        value = json.loads(arguments)
        jsonschema.validate(value, WEATHER if item["function"] == "get_weather" else ADD)
    except (ValueError, jsonschema.ValidationError):
        return False, False
    if item["function"] == "get_weather":
        return True, value["city"].strip().lower() == item["expected"]["city"].lower()
    return True, (value["a"], value["b"]) in ((item["expected"]["a"], item["expected"]["b"]),
                                              (item["expected"]["b"], item["expected"]["a"]))


def free_arguments(model, item: dict) -> str:
    """The server's instruction, without the schema: the first {...} of the text, as a client would read it."""
    function = next(t["function"] for t in TOOLS if t["function"]["name"] == item["function"])
    text = model.chat([{"role": "system", "content": f"Call the function {function['name']} "
                        f"({function['description']}): write its arguments as a JSON object."},
                       {"role": "user", "content": item["question"]}], temperature=0, max_tokens=100).text
    found = re.search(r"\{.*?\}", text, re.S)
    return found.group(0) if found else text


def loop_ends(model, question: str, stop_repeats: bool, most: int = 5) -> int | None:
    """Requests until a reply in words, as a client's agent loop makes them; None past ``most``."""
    messages: list[dict] = [{"role": "user", "content": question}]
    for step in range(1, most + 1):
        body, tools = take_tools({"messages": messages, "tools": TOOLS})
        request = Request(messages=body["messages"], temperature=0, max_tokens=100)
        made = call_or_reply(model, request, tools, stop_repeats=stop_repeats)
        if not isinstance(made, ToolCall):
            return step
        messages += [{"role": "assistant", "content": None, "tool_calls": [made.json()]},
                     {"role": "tool", "tool_call_id": made.id, "content": '{"result": 42}'}]
    return None


def rate(hits: int, n: int) -> dict:
    ci = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"hits": hits, "n": n, "pct": round(100 * hits / n, 1),
            "pct_95ci_wilson": [round(100 * ci.low, 1), round(100 * ci.high, 1)]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local")
    args = parser.parse_args()
    model = get_model(args.model, source="bench")
    asked = items()
    results: dict = {}
    for way in ("schema", "free"):
        valid = right = 0
        start = time.perf_counter()
        for item in asked:
            if way == "schema":
                named = Tools(tools=TOOLS, tool_choice={"type": "function", "function": {"name": item["function"]}})
                request = Request(messages=[{"role": "user", "content": item["question"]}], temperature=0,
                                  max_tokens=100)
                arguments = call_or_reply(model, request, named).arguments
            else:
                arguments = free_arguments(model, item)
            ok, correct = judged(arguments, item)
            valid, right = valid + ok, right + correct
        results[f"arguments_{way}"] = {"valid": rate(valid, len(asked)), "right": rate(right, len(asked)),
                                       "seconds": round(time.perf_counter() - start, 1)}
        print(f"arguments, {way:6s}: valid {valid}/{len(asked)}, right {right}/{len(asked)}")
    picked = 0
    for item in asked:
        request = Request(messages=[{"role": "user", "content": item["question"]}], temperature=0, max_tokens=100)
        made = call_or_reply(model, request, Tools(tools=TOOLS, tool_choice="required"))
        picked += made.name == item["function"]
    results["required_right_function"] = rate(picked, len(asked))
    print(f"required: right function {picked}/{len(asked)}")
    replied = 0
    for question in NEITHER:
        request = Request(messages=[{"role": "user", "content": question}], temperature=0, max_tokens=100)
        replied += not isinstance(call_or_reply(model, request, Tools(tools=TOOLS)), ToolCall)
    results["auto_replies_in_words_when_no_function_fits"] = rate(replied, len(NEITHER))
    print(f"auto, no function fits: replied in words {replied}/{len(NEITHER)}")
    questions = [item["question"] for item in asked] + NEITHER
    for stop_repeats in (True, False):
        steps = [loop_ends(model, question, stop_repeats) for question in questions]
        ended = [s for s in steps if s is not None]
        results[f"agent_loops_{'stop_repeats' if stop_repeats else 'as_asked'}"] = {
            **rate(len(ended), len(questions)), "requests_when_ended": dict(sorted(Counter(ended).items()))}
        print(f"agent loops, stop_repeats={stop_repeats}: {len(ended)}/{len(questions)} end within 5 requests")
    write("serve_tools", {"model": args.model, "results": results})


if __name__ == "__main__":
    main()
