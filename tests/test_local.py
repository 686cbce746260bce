"""The embedded backend: SmolLM2-135M-Instruct in-process through xllamacpp."""

import json
import math
import os
import threading

import jsonschema
import pytest

from genlab.errors import ConfigError, RequestRejected
from genlab.models import get_model
from genlab.models.local import embedded_gguf
from genlab.models.model import build_request

TOPICS = ["the ocean", "a cat", "tax law", "volcanoes", "jazz", "a bicycle", "chess", "the moon", "bread",
          "rain", "a library", "electricity", "a dragon", "football", "winter", "a robot", "coffee",
          "mountains", "a violin", "the internet", "gardening", "a pirate", "glaciers", "a train", "honey"]


def test_embedded_gguf_found_without_importing_the_wheel():
    path = embedded_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_chat_answers_and_counts_tokens(local, store):
    response = local.chat("What is the capital of France?", temperature=0, max_tokens=40)
    assert response.text.strip()  # what it says is the small model's business
    assert response.usage.prompt_tokens > 10 and 0 < response.usage.completion_tokens <= 40
    assert response.cost_usd == 0.0
    row = store.execute("SELECT * FROM calls")[0]
    assert row["model"] == "local" and row["completion_tokens"] == response.usage.completion_tokens


def test_stream_matches_non_stream_at_temperature_zero(local):
    # llama.cpp reuses the longest cached prefix of the previous prompt, and the logits of a
    # token computed in a different batch can differ in the last bits, enough to flip a
    # near-tie. One call first, so both compared calls start from the same cache.
    local.chat("Name three colours.", temperature=0, max_tokens=1)
    full = local.chat("Name three colours.", temperature=0, max_tokens=30)
    stream = local.chat("Name three colours.", temperature=0, max_tokens=30, stream=True)
    pieces = [chunk.text for chunk in stream]
    assert len(pieces) > 3 and "".join(pieces) == full.text
    assert stream.response.usage.completion_tokens == full.usage.completion_tokens


def test_repeated_prompt_reports_cached_tokens(local):
    local.chat("Tell me about owls.", temperature=0, max_tokens=5)
    again = local.chat("Tell me about owls.", temperature=0, max_tokens=5)
    assert 0 < again.usage.cached_tokens <= again.usage.prompt_tokens


def test_seed_reproducible_at_temperature_one_and_n_choices_differ(local):
    a = local.chat("Write a one-line story.", temperature=1.0, seed=7, max_tokens=30, n=3)
    b = local.chat("Write a one-line story.", temperature=1.0, seed=7, max_tokens=30, n=3)
    assert a.texts == b.texts
    assert len(set(a.texts)) > 1


@pytest.mark.parametrize("seed", [-1, 2**32 - 1])
def test_the_seed_llama_cpp_reads_as_random_repeats_too(local, seed):
    """llama.cpp draws a random seed for 0xFFFFFFFF (-1): these calls gave a new story each time,
    while genlab's cache and `deterministic` took them as repeatable."""
    a = local.chat("Write a one-line story.", temperature=1.5, seed=seed, max_tokens=30)
    b = local.chat("Write a one-line story.", temperature=1.5, seed=seed, max_tokens=30)
    assert a.text == b.text


@pytest.mark.parametrize("messages, n", [
    ([{"role": "user", "content": "hi"}], 1),  # the template's own system prompt outweighs the bytes
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}], 1),
    ([{"role": "user", "content": "Describe the sea. " * 40}], 4),  # llama.cpp reads the prompt per choice
])
def test_a_budget_reserves_at_least_what_the_call_uses(local, messages, n):
    # A USD budget is a hard ceiling only if the reserved worst case bounds the real usage.
    request = build_request(messages=messages, n=n, max_tokens=8, temperature=1.0, seed=1)
    worst = local._worst_case(request)
    used = local.execute(request).usage
    assert used.prompt_tokens <= worst.prompt_tokens and used.completion_tokens <= worst.completion_tokens


def test_stop_sequence_ends_the_answer(local):
    free = local.chat("Count from 1 to 10, separated by commas.", temperature=0, max_tokens=40)
    assert "," in free.text
    stopped = local.chat("Count from 1 to 10, separated by commas.", temperature=0, max_tokens=40, stop=[","])
    assert "," not in stopped.text and stopped.choices[0].finish_reason == "stop"
    assert free.text.startswith(stopped.text)


def test_plain_completion(local):
    response = local.complete("The first three letters of the alphabet are", temperature=0, max_tokens=8)
    assert response.text and response.usage.prompt_tokens < 15


def test_concurrent_callers_get_their_own_answers(local):
    # Each caller may only ever see its own labels: a mixed-up slot, grammar or stream
    # would hand one caller another's answer.
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        labels = [f"red{i}", f"green{i}", f"blue{i}"]
        fmt = {"type": "enum", "enum": labels}
        if i % 2:
            stream = local.chat(f"Pick a colour for {TOPICS[i]}.", response_format=fmt, stream=True,
                                temperature=1.0, seed=i)
            results[i] = "".join(chunk.text for chunk in stream)
        else:
            results[i] = local.chat(f"Pick a colour for {TOPICS[i]}.", response_format=fmt,
                                    temperature=1.0, seed=i).text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(8))
    for i, answer in results.items():
        assert answer in (f"red{i}", f"green{i}", f"blue{i}"), (i, answer)


def test_seeded_calls_repeat_whatever_else_is_decoding(local):
    """llama.cpp batches concurrent calls, and the batch changes the logits' last bits: a seeded
    call decodes alone, so 12 greedy seeded answers at concurrency 4 equal those one at a time
    (with shared batches about a quarter of them differed)."""
    from concurrent.futures import ThreadPoolExecutor

    prompts = [f"Write two sentences about {topic}." for topic in TOPICS[:12]]

    def ask(prompt: str) -> str:
        return local.chat(prompt, temperature=0, seed=0, max_tokens=48).text

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(ask, prompts))
        mixed = [pool.submit(local.chat, p, temperature=1.0, max_tokens=16) for p in prompts]  # unseeded traffic
        with_traffic = list(pool.map(ask, prompts))
        for future in mixed:
            future.result()
    alone = [ask(p) for p in prompts]
    assert together == alone and with_traffic == alone


def test_enum_mode_always_valid_on_50_prompts(local):
    labels = ["positive", "negative", "neutral"]
    prompts = [f"Classify the sentiment of: 'I {verb} {t}.'" for t in TOPICS
               for verb in ("love", "am unsure about")]
    assert len(prompts) == 50
    answers = [local.chat(p, response_format={"type": "enum", "enum": labels}, temperature=0.8, seed=i).text
               for i, p in enumerate(prompts)]
    assert all(a in labels for a in answers), answers


def test_json_schema_output_always_valid_on_50_prompts(local):
    schema = {"type": "object", "properties": {
        "topic": {"type": "string", "maxLength": 40},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}},
        "required": ["topic", "rating", "tags"], "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "review", "schema": schema}}
    prompts = [f"{kind} {t} as JSON with a topic, a 1-5 rating and up to three tags." for t in TOPICS
               for kind in ("Review", "Describe")]
    assert len(prompts) == 50
    for i, p in enumerate(prompts):
        text = local.chat(p, response_format=fmt, temperature=0.7, seed=i, max_tokens=300).text
        jsonschema.validate(json.loads(text), schema)


def test_context_overflow_is_a_clear_error(local):
    # llama.cpp's own message ends "try increasing it", which genlab's fixed context does not allow
    for stream in (False, True):
        with pytest.raises(RequestRejected, match=r"the request is \d+ tokens, more than the 8192 this model "
                                                  r"reads at once \(prompt and answer\); shorten it"):
            response = local.chat("word " * 9000, max_tokens=5, stream=stream)
            if stream:
                list(response)


def test_missing_gguf_file_is_a_config_error():
    with pytest.raises(ConfigError, match="no GGUF file at /nope/model.gguf"):
        get_model("local:/nope/model.gguf")


def test_enum_mode_answers_the_label_likeliest_as_a_whole(local):
    """Each label is scored whole: the answer's own log-probability (its tokens, as llama.cpp
    splits it, and the end of the answer) is the highest of the labels', each asked alone."""
    from genlab.models.local import load_server, tokenize

    labels = ["sports", "weather", "food", "technology", "get_weather", "reply in words"]
    prompt = "Our app crashed when users uploaded large files. Which label fits?"

    def scored(options: list[str]):
        return local.chat(prompt, response_format={"type": "enum", "enum": options}, temperature=0, logprobs=True)

    answer = scored(labels)
    alone = {label: sum(t["logprob"] for t in scored([label]).choices[0].logprobs) for label in labels}
    assert answer.text == max(alone, key=alone.get)
    tokens = answer.choices[0].logprobs
    assert "".join(t["token"] for t in tokens) == answer.text        # its tokens, then the end ("")
    assert len(tokens) == len(tokenize(load_server(local.backend.path), answer.text)) + 1
    assert answer.usage.completion_tokens == sum(len(tokenize(load_server(local.backend.path), label)) + 1
                                                 for label in labels)


def test_the_loopback_listener_runs_nothing_for_a_caller_without_its_key(local):
    """xllamacpp's server also listens on 127.0.0.1, where any local user could reach it;
    genlab's own /tokenize calls carry the key, others are refused."""
    import json
    from urllib.error import HTTPError
    from urllib.request import ProxyHandler, build_opener
    from urllib.request import Request as HttpRequest

    from genlab.models.local import load_server, tokenize

    server = load_server(local.backend.path)
    direct = build_opener(ProxyHandler({}))      # as genlab's own calls: never through http_proxy
    for path, body in (("/completion", {"prompt": "One, two,", "n_predict": 2}), ("/tokenize", {"content": "hi"})):
        call = HttpRequest(server.listening_address + path, data=json.dumps(body).encode(),
                           headers={"Content-Type": "application/json"})
        with pytest.raises(HTTPError) as refused:
            direct.open(call, timeout=30)
        assert refused.value.code == 401
    assert tokenize(server, "hi")


def test_enum_mode_works_behind_an_http_proxy(tmp_path):
    """Labels are tokenized over loopback; with http_proxy set (and no no_proxy), urllib
    would send that call to the proxy, and every enum call failed."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy")}
    env |= {"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "GENLAB_HOME": str(tmp_path)}
    code = ("from genlab.models import get_model; print(get_model('local').chat('Pick one.', temperature=0, "
            "response_format={'type': 'enum', 'enum': ['red', 'green']}).text)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() in ("red", "green")


def test_enum_mode_past_the_scored_labels_is_one_grammar(local):
    from genlab.models.local import MAX_SCORED_LABELS

    labels = [f"label{i}" for i in range(MAX_SCORED_LABELS + 1)]
    response = local.chat("Pick one.", response_format={"type": "enum", "enum": labels}, temperature=0)
    assert response.text in labels
    assert response.usage.completion_tokens <= 6          # one call's tokens, not one call per label


def test_enum_answers_cached_before_labels_were_scored_whole_are_not_replayed(local, monkeypatch):
    from genlab.models import local as local_module

    def ask():
        return local.chat("Pick the colour of grass.", response_format={"type": "enum", "enum": ["red", "green"]},
                          temperature=0, cache=True)

    with monkeypatch.context() as old_way:
        old_way.setattr(local_module, "MAX_SCORED_LABELS", 0)    # one grammar, token by token
        assert not ask().cache_hit and ask().cache_hit
    scored = ask()
    assert not scored.cache_hit and scored.usage.completion_tokens > 2   # one call per label
    assert ask().cache_hit


def test_a_label_is_drawn_from_the_softmax_of_the_scores_at_a_temperature():
    from genlab.models.backend import choose_label

    scores = [math.log(1.0), math.log(3.0), -1e9]
    assert choose_label(scores, 0, seed=1) == choose_label(scores, None, seed=None) == 1
    draws = [choose_label(scores, 1.0, seed) for seed in range(4000)]
    assert 0.72 < draws.count(1) / len(draws) < 0.78 and 2 not in draws
    assert draws == [choose_label(scores, 1.0, seed) for seed in range(4000)]   # a seed repeats its draw
    hot = [choose_label(scores, 50.0, seed) for seed in range(4000)]           # flatter as it heats
    assert 0.40 < hot.count(1) / len(hot) < 0.60


def test_logprobs_measure_how_likely_an_answer_is(local):
    response = local.chat("Say yes.", max_tokens=6, temperature=0, logprobs=True)
    choice = response.choices[0]
    assert len(choice.logprobs) == response.usage.completion_tokens
    assert "".join(t["token"] for t in choice.logprobs) == choice.text
    assert choice.mean_logprob < 0
    assert all("top_logprobs" not in t for t in choice.logprobs)   # llama.cpp sends alternatives unasked
    with pytest.raises(ConfigError, match="logprobs are available for chat requests"):
        local.complete("x", logprobs=True)


def test_frequency_penalty_breaks_a_repetition(local):
    """Greedy decoding repeats the pattern; a penalty per occurrence of a token already in
    the context (llama.cpp counts the prompt's too) makes it leave the pattern."""
    prompt = "1, 1, 1, 1, 1, 1, 1, 1,"
    plain = local.complete(prompt, max_tokens=12, temperature=0, seed=0).text
    penalised = local.complete(prompt, max_tokens=12, temperature=0, seed=0, frequency_penalty=1.5).text
    assert plain.count("1") >= 3 and penalised.count("1") < plain.count("1"), (plain, penalised)


def test_logit_bias_bans_and_forces_tokens(local):
    """logit_bias takes the model's token ids (read here with its own tokenizer): -100 on
    the greedy answer's first token makes it start otherwise; +100 on another forces it."""
    from transformers import AutoTokenizer

    from genlab.models import embedded_gguf

    gguf = embedded_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    asked = dict(max_tokens=6, temperature=0, seed=0)
    plain = local.chat("Say hi", **asked).text
    first = tokenizer.encode(plain)[0]
    banned = local.chat("Say hi", logit_bias={first: -100}, **asked).text
    assert tokenizer.encode(banned)[0] != first, (plain, banned)
    forced = tokenizer.encode(" zebra")
    assert local.chat("Say hi", logit_bias={str(forced[0]): 100}, **asked).text.startswith(tokenizer.decode(forced[:1]))
    assert local.chat("Say hi", logit_bias={}, **asked).text == plain
    for bias, message in (({first: -101}, "greater than or equal to -100"), ({"I": 5}, "valid integer")):
        with pytest.raises(ConfigError, match=f"logit_bias.*{message}"):
            local.chat("Say hi", logit_bias=bias)


def test_top_logprobs_are_the_likeliest_tokens_at_each_step(local):
    response = local.chat("Say yes.", max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    for token in response.choices[0].logprobs:
        alternatives = [t["logprob"] for t in token["top_logprobs"]]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        # greedy: the token chosen is the likeliest one
        assert token["top_logprobs"][0]["token"] == token["token"]
        assert abs(alternatives[0] - token["logprob"]) < 1e-4
    with pytest.raises(ConfigError, match="top_logprobs needs logprobs: true"):
        local.chat("x", top_logprobs=2)


def test_grammar_constrains_every_sample(local):
    grammar = 'root ::= "    return " ("item" | "bins" | [0-9]) "\\n"'
    response = local.complete("def priority(item, bins):\n", grammar=grammar, n=6, temperature=1.5, max_tokens=16)
    assert all(t in ("    return item\n", "    return bins\n") or t[:-1].removeprefix("    return ").isdigit()
               for t in response.texts), response.texts


def test_grammar_and_structured_output_are_one_or_the_other(local):
    with pytest.raises(ConfigError, match="give either 'grammar' or a structured 'response_format'"):
        local.chat("hi", grammar='root ::= "a"', response_format={"type": "enum", "enum": ["a", "b"]})


def test_a_process_that_exits_while_a_call_decodes_in_a_thread_exits_cleanly(tmp_path):
    """A program (genlab evolve on Ctrl-C, or any script) that exited while another thread's
    call was inside llama.cpp died with SIGSEGV, in 4 runs of 4: Python tore the process down
    under it. The call is now waited for (a whole answer cannot be stopped), saying so."""
    import subprocess
    import sys

    script = """if True:
        import atexit, sys, threading, time
        from genlab.models import get_model

        model = get_model("local", source="test")
        model.chat("Say hi", max_tokens=2)            # loaded
        story = lambda: model.chat("Write a long story about a lighthouse.", max_tokens=400, temperature=1,
                                   stop=["never"])
        thread = threading.Thread(target=story, daemon=True)
        thread.start()
        # Runs before genlab's own exit hook (registered earlier): is the call still decoding?
        atexit.register(lambda: print("decoding at exit:", thread.is_alive(), file=sys.stderr))
        time.sleep(0.3)
        sys.exit(130)                                  # as the CLI leaves on Ctrl-C
    """
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "GENLAB_HOME": str(tmp_path)})
    assert result.returncode == 130, (result.returncode, result.stderr)
    assert result.stderr.startswith("decoding at exit: True") and "FATAL" not in result.stderr
