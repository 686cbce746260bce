"""`genlab prompt`, `chat`, `models`, `usage` and `serve`: reaching models."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from genlab.cli.common import (BudgetTokensOpt, BudgetUsdOpt, ModelOpt, app, budget_from, chat_lines, err, labelled,
                               note_busy_cores, out)
from genlab.errors import ConfigError, GenlabError, RequestRejected


# Options shared by `prompt` and `chat`.
SystemOpt = typer.Option(None, "--system", "-s", help="System message.")
TemperatureOpt = typer.Option(None, "--temperature", "-t", help="0 answers greedily; higher samples more freely "
                              "(default: the model's; 0.8 on the embedded model).")
TopPOpt = typer.Option(None, "--top-p", help="Sample from the likeliest tokens that make up this share of the odds "
                       "(default: the model's; 0.95 on the embedded model).")
TopKOpt = typer.Option(None, "--top-k", help="Sample from this many likeliest tokens (default: the model's; 40 on the "
                       "embedded model).")
SeedOpt = typer.Option(None, "--seed", help="Sample the same answer again for the same seed.")
PresenceOpt = typer.Option(None, "--presence-penalty", help="-2 to 2: lowers (raises) the odds of any token "
                           "already in the text, so the answer moves on to new words.")
FrequencyOpt = typer.Option(None, "--frequency-penalty", help="-2 to 2: the same, once for each time the "
                            "token occurred, so it breaks repetitions.")
MaxTokensOpt = typer.Option(None, "--max-tokens", help="Longest answer in tokens (default: the model's; 1024 on the "
                             "embedded model).")


def _usage_line(response) -> str:
    u = response.usage
    cost = "cost unknown" if response.cost_usd is None else f"${response.cost_usd:.6f}"
    cached = "cache hit · " if response.cache_hit else ""
    rate = ""
    if u.completion_tokens and response.latency_s > 0 and not response.cache_hit:
        rate = f" · {u.completion_tokens / response.latency_s:.0f} tok/s"
    return (f"{cached}{response.model} · {u.prompt_tokens} prompt tokens ({u.cached_tokens} cached) · "
            f"{u.completion_tokens} completion · {cost} · {response.latency_s:.2f} s{rate}")


def _read_schema(given: str) -> dict:
    """A JSON schema from a file, or written inline (it starts with '{')."""
    inline = given.lstrip().startswith("{")
    try:
        schema = json.loads(given if inline else Path(given).read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigError(f"cannot read the schema file {given}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        where = "the inline schema" if inline else given
        problem = "is nested too deeply to read" if isinstance(exc, RecursionError) else f"is not valid JSON ({exc})"
        raise ConfigError(f"{where} {problem}; fix it") from None
    if isinstance(schema, dict) and "schema" in schema and isinstance(schema["schema"], dict):
        return {"type": "json_schema", "json_schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "output" if inline else Path(given).stem, "schema": schema}}


def _response_format(json_schema: Optional[str], enum: Optional[str]) -> dict | None:
    if json_schema and enum:
        raise ConfigError("give --json-schema or --enum, not both")
    if json_schema:
        return _read_schema(json_schema)
    if enum is not None:
        from genlab.search.classify import check_labels

        return {"type": "enum", "enum": check_labels(enum.split(","), "--enum")}
    return None


@app.command()
def prompt(
    text: Optional[str] = typer.Argument(None, help="The prompt; read from stdin when absent or '-'."),
    model: str = ModelOpt,
    system: Optional[str] = SystemOpt,
    temperature: Optional[float] = TemperatureOpt,
    top_p: Optional[float] = TopPOpt,
    top_k: Optional[int] = TopKOpt,
    seed: Optional[int] = SeedOpt,
    presence_penalty: Optional[float] = PresenceOpt,
    frequency_penalty: Optional[float] = FrequencyOpt,
    n: int = typer.Option(1, "-n", help="Number of answers."),
    stop: Optional[list[str]] = typer.Option(None, "--stop", help="Stop sequence (repeatable)."),
    max_tokens: Optional[int] = MaxTokensOpt,
    json_schema: Optional[str] = typer.Option(None, "--json-schema", help="JSON schema the answer must match: a "
                                              "file, or the schema itself ('{\"type\": \"object\", …}')."),
    enum: Optional[str] = typer.Option(None, "--enum", help="Comma-separated labels; the answer is exactly one."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole response as JSON."),
    cache: bool = typer.Option(False, "--cache/--no-cache", help="Reuse a stored answer (greedy or seeded only)."),
    budget_usd: Optional[float] = BudgetUsdOpt,
    budget_tokens: Optional[int] = BudgetTokensOpt,
) -> None:
    """Send one prompt and print the answer (and a usage line on stderr).

    Examples:

      genlab prompt "Name three prime numbers"

      echo "Is the sky green?" | genlab prompt --enum yes,no

      genlab prompt -m gemini:gemini-2.5-flash --json-schema person.json "Invent a person"
    """
    from genlab.models import build_request, get_model

    if text is None or text == "-":
        if sys.stdin.isatty():
            raise ConfigError('no prompt given; pass it as an argument (genlab prompt "...") or on stdin')
        text = sys.stdin.read()
    if not text.strip():
        raise ConfigError("the prompt is empty; give some text")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    request = build_request(messages=messages, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                            presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
                            n=n, stop=stop, max_tokens=max_tokens,
                            response_format=_response_format(json_schema, enum))
    llm = get_model(model, budget=budget_from(budget_usd, budget_tokens), source="cli")
    if as_json or n > 1:
        response = llm.execute(request, cache=cache)
        if as_json:
            out.print_json(data=response.to_dict())
        else:
            for choice in response.choices:
                out.print(labelled(f"[{choice.index}]", "bold", choice.text))
    else:
        stream = llm.execute(request, stream=True, cache=cache)
        for chunk in stream:
            out.out(chunk.text, end="")
        out.out("")
        response = stream.response
    err.print(_usage_line(response), style="dim")


@app.command()
def chat(
    model: str = ModelOpt,
    system: Optional[str] = SystemOpt,
    temperature: Optional[float] = TemperatureOpt,
    top_p: Optional[float] = TopPOpt,
    top_k: Optional[int] = TopKOpt,
    seed: Optional[int] = SeedOpt,
    presence_penalty: Optional[float] = PresenceOpt,
    frequency_penalty: Optional[float] = FrequencyOpt,
    max_tokens: Optional[int] = MaxTokensOpt,
) -> None:
    """Chat interactively, with streamed answers.

    /up or /down rates the last reply (/down BETTER ANSWER also stores the answer you wanted);
    ratings go to genlab's store for `genlab feedback export`. /reset forgets, /help lists the commands,
    /exit or Ctrl-D leaves; a mistyped /command is refused, never sent to the model.
    """
    from genlab.models import build_request, get_model

    llm = get_model(model, source="cli")
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    interactive = sys.stdin.isatty()
    last_reply: str | None = None
    rated: str | None = None         # the reply last rated: rating it again replaces that rating
    failed = False   # a turn the model refused or could not answer: exit 1 at the end, for scripts
    usage = "/up or /down [better answer] rates the last reply, /reset forgets, /help, /exit leaves"
    for line in chat_lines(f"genlab chat with {model}", usage, ("/up", "/down", "/reset")):
        if line == "/reset":
            history = history[:1] if system else []
            last_reply = None
            continue
        command, _, better = line.partition(" ")
        if command in ("/up", "/down"):
            if last_reply is None:
                err.print("nothing to rate yet: ask something first", style="yellow")
            elif command == "/up" and better:
                err.print("nothing stored: /up takes no text (/down BETTER ANSWER stores the answer you "
                          "wanted instead)", style="yellow")
            else:
                llm.store.add_feedback(last_reply, rating=1 if command == "/up" else -1,
                                       better=better.strip() or None, source="chat")
                err.print(f"stored {'thumbs up' if command == '/up' else 'thumbs down'}"
                          f"{' with a better answer' if better else ''}"
                          f"{'; it replaces your earlier rating of this reply' if last_reply == rated else ''}",
                          style="dim")
                rated = last_reply
            continue
        history.append({"role": "user", "content": line})
        request = build_request(messages=history, temperature=temperature, top_p=top_p, top_k=top_k,
                                seed=seed, presence_penalty=presence_penalty,
                                frequency_penalty=frequency_penalty, max_tokens=max_tokens)
        if interactive:
            out.print(labelled("model>", "bold", ""), end="")
        printed = interactive
        try:
            stream = llm.execute(request, stream=True)
            for chunk in stream:
                out.out(chunk.text, end="")
                printed = True
        except GenlabError as exc:   # this turn failed, not the session: say why and go on
            if printed:
                out.out("")
            history.pop()
            earlier = " (/reset forgets the conversation so far)" if isinstance(exc, RequestRejected) and \
                any(m["role"] == "assistant" for m in history) else ""
            err.print(labelled("error:", "red", f"{exc}{earlier}"))
            failed = True
            continue
        out.out("")
        llm.store.record_response(stream.response.id, model, history, [stream.response.text], source="chat")
        last_reply = stream.response.id
        history.append({"role": "assistant", "content": stream.response.text})
        err.print(_usage_line(stream.response), style="dim")
    if failed:
        raise typer.Exit(1)


@app.command()
def models() -> None:
    """List the backends genlab can reach and whether they are ready.

    Models, image and speech backends (for trailers) and search backends (for grounded
    answers); built in and plugins."""
    from genlab.machine import thread_count, usable_cores
    from genlab.models.registry import describe_entries

    table = Table("kind", "spec", "what", "status")
    for kind in ("model", "image", "speech", "search"):
        for usage, description, status in describe_entries(kind):
            style = "red" if status.startswith("error") else "yellow" if status.startswith("set ") else ""
            table.add_row(kind, usage, description, Text(status, style=style))
    out.print(table)
    threads, cores = thread_count(), usable_cores()
    out.print(f"in-process models use {threads} threads (GENLAB_THREADS) on {cores} usable cores")
    if threads > cores:
        err.print(f"GENLAB_THREADS={threads} is more than the {cores} cores: threads wait on each other and "
                  f"generation slows; set it to {cores} or less", style="yellow")


@app.command()
def usage(
    days: int = typer.Option(30, "--days", min=1, help="How many days back."),
    as_json: bool = typer.Option(False, "--json", help="Print rows as JSON."),
) -> None:
    """Print tokens and cost by model and day, from genlab's store."""
    from genlab.store import Store

    store = Store()
    rows = store.usage_by_model_and_day(since=time.time() - days * 86400)
    if as_json:
        out.print_json(data=rows)
        return
    if not rows:
        out.print(f"no model calls logged in the last {days} days ({store.path})")
        return
    table = Table("day", "model", "calls", "cache hits", "errors", "prompt", "cached", "completion", "cost (USD)",
                  title=f"genlab usage · {store.path}")
    total = 0.0
    for r in rows:
        cost = f"{r['cost_usd'] or 0:.6f}" + (f" (+{r['unpriced']} unpriced)" if r["unpriced"] else "")
        total += r["cost_usd"] or 0
        table.add_row(r["day"], r["model"], str(r["calls"]), str(r["cache_hits"]), str(r["errors"]),
                      str(r["prompt_tokens"]), str(r["cached_tokens"]), str(r["completion_tokens"]), cost)
    out.print(table)
    out.print(f"total: ${total:.6f}")


@app.command()
def serve(
    model: list[str] = typer.Option(["local"], "--model", "-m", help="Model spec to serve (repeatable)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; beyond loopback needs --api-key."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="0: any free port (printed)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="GENLAB_SERVE_API_KEY", show_envvar=True,
                                          help="Require 'Authorization: Bearer KEY' (needed beyond loopback; "
                                          "prefer the variable: a flag is visible in ps)."),
    budget_usd: Optional[float] = BudgetUsdOpt,
    budget_tokens: Optional[int] = BudgetTokensOpt,
    slots: int = typer.Option(4, "--slots", min=1, help="Requests generating at once, per model."),
    queue: int = typer.Option(32, "--queue", min=0, help="Requests waiting for a slot, per model; 429 beyond."),
    queue_timeout: float = typer.Option(30.0, "--queue-timeout", min=0.1, help="Longest wait for a slot (s); 429 after."),
    max_tokens: int = typer.Option(4096, "--max-tokens", min=1, help="Largest max_tokens a request may ask for."),
    max_body_kb: int = typer.Option(1024, "--max-body-kb", min=1, help="Largest request body; 413 above."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", min=0.1,
                                       help="Longest wait for a whole request body (s); 408 after."),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Another name clients may put in the Host "
                                         "header, e.g. behind a reverse proxy (repeatable)."),
) -> None:
    """Serve models at /v1 for any OpenAI client (chat with tools, completions, embeddings, streaming).

    Example: genlab serve --port 8000, then
    OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none").chat.completions.create(model="local", ...)
    """
    from genlab.models.backend import redact
    from genlab.serve import ServeLimits, serve as run_server

    model = list(dict.fromkeys(model))    # a spec given twice is one model: clients name it once
    limits = ServeLimits(slots=slots, queue=queue, queue_timeout_s=queue_timeout, max_tokens=max_tokens,
                         max_total_tokens=max(max_tokens, ServeLimits.max_total_tokens),
                         max_body_bytes=max_body_kb * 1024, body_timeout_s=body_timeout)

    def ready(bound: int) -> None:
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host     # an IPv6 address in a URL
        err.print(f"genlab serving {', '.join(redact(m) for m in model)} at http://{shown}:{bound}/v1 (Ctrl-C stops)")

    note_busy_cores()
    run_server(model, host=host, port=port, api_key=api_key, budget=budget_from(budget_usd, budget_tokens),
               limits=limits, allow_hosts=allow_host, on_ready=ready)
