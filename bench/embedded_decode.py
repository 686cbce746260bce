"""Decode speed of the embedded model through genlab vs xllamacpp called directly.

Same process, same loaded llama.cpp server, same prompt and settings; the two paths
alternate so that machine noise hits both. genlab's path adds request validation,
the Model wrapper and one SQLite write per call. Goal: ratio >= 0.95.

    .venv/bin/python bench/embedded_decode.py [--reps 7] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from common import median, write

from genlab.models import get_model
from genlab.models.local import load_server
from genlab.store import Store

PROMPT = "Write a long story about a dragon who learns to bake bread."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()

    store = Store(tempfile.mkdtemp() + "/bench.db")
    model = get_model("local", store=store, source="bench")
    server = load_server(model.backend.path)
    payload = {"messages": [{"role": "user", "content": PROMPT}], "temperature": 0, "max_tokens": args.max_tokens}

    def direct() -> tuple[float, int]:
        start = time.perf_counter()
        out = server.handle_chat_completions(payload)
        return time.perf_counter() - start, out["usage"]["completion_tokens"]

    def through_genlab() -> tuple[float, int]:
        start = time.perf_counter()
        response = model.chat(PROMPT, temperature=0, max_tokens=args.max_tokens)
        return time.perf_counter() - start, response.usage.completion_tokens

    direct(), through_genlab()  # warm-up: model load, prompt cache
    rates: dict[str, list[float]] = {"direct": [], "genlab": []}
    for _ in range(args.reps):
        for name, run in (("direct", direct), ("genlab", through_genlab)):
            seconds, tokens = run()
            rates[name].append(tokens / seconds)
    direct_rate, genlab_rate = median(rates["direct"]), median(rates["genlab"])
    ratio = genlab_rate / direct_rate
    print(f"embedded decode, {args.max_tokens} tokens, median of {args.reps}:")
    print(f"  xllamacpp direct : {direct_rate:7.1f} tokens/s")
    print(f"  through genlab   : {genlab_rate:7.1f} tokens/s")
    print(f"  ratio genlab/direct: {ratio:.3f} (goal >= 0.95)")
    write("embedded_decode", {"max_tokens": args.max_tokens, "reps": args.reps, "tokens_per_s": rates,
                              "median_direct": direct_rate, "median_genlab": genlab_rate, "ratio": ratio})


if __name__ == "__main__":
    main()
