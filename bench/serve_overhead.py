"""Latency that `genlab serve` adds to a model call, and 8 concurrent streams.

Starts `genlab serve` on a free loopback port and sends the same greedy request
(32 tokens) through it with the openai SDK. The overhead of each request is the
client's round trip minus the model's own time for that same call, as the server
logged it: both clocks time one call in one run, so the difference is not drowned
by decoding noise (comparing against an in-process call in another process once
gave a negative overhead). Its median comes with a 95 % bootstrap interval.

For reference the same request is also timed in-process, alternating with the
server (never at the same time), and both paths must have made the same tokens.

    .venv/bin/python bench/serve_overhead.py [--reps 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openai
from common import median, write
from scipy import stats

from genlab.models import get_model
from genlab.store import Store

MESSAGES = [{"role": "user", "content": "Describe a lighthouse in one paragraph."}]


def start_server(home: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "genlab.cli", "serve", "--port", str(port)],
                            env={**os.environ, "GENLAB_HOME": home}, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.2)
    raise SystemExit("genlab serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    home = tempfile.mkdtemp()
    proc, base_url = start_server(home)
    try:
        client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)
        model = get_model("local", store=Store(home + "/bench.db"), source="bench")

        made: dict[str, set] = {"in_process": set(), "http": set()}

        def in_process() -> float:
            start = time.perf_counter()
            r = model.chat(MESSAGES, temperature=0, max_tokens=args.max_tokens)
            made["in_process"].add((r.text, r.usage.completion_tokens))
            return time.perf_counter() - start

        def over_http() -> float:
            start = time.perf_counter()
            r = client.chat.completions.create(model="local", messages=MESSAGES, temperature=0,
                                               max_tokens=args.max_tokens)
            made["http"].add((r.choices[0].message.content, r.usage.completion_tokens))
            return time.perf_counter() - start

        in_process(), over_http()  # warm-up
        server_store = Store(home + "/genlab.db")
        warmed = len(server_store.execute("SELECT id FROM calls"))
        times: dict[str, list[float]] = {"in_process": [], "http": []}
        for _ in range(args.reps):
            times["in_process"].append(in_process())
            times["http"].append(over_http())
        local_s, http_s = median(times["in_process"]), median(times["http"])
        # The model's own time for each HTTP call, logged by the server (same order).
        model_s = [r["latency_s"] for r in server_store.execute("SELECT latency_s FROM calls ORDER BY id")][warmed:]
        overhead = np.array(times["http"]) - np.array(model_s)
        low, high = stats.bootstrap((overhead,), np.median, confidence_level=0.95, n_resamples=2000,
                                    random_state=0).confidence_interval
        if made["in_process"] != made["http"] or len(made["http"]) != 1:
            raise SystemExit(f"the two paths made different tokens: {made}")

        def one_stream(i: int) -> tuple[bool, int]:
            try:
                chunks = list(client.chat.completions.create(
                    model="local", messages=[{"role": "user", "content": f"Tell me fact number {i} about owls."}],
                    max_tokens=64, stream=True, stream_options={"include_usage": True}))
                return True, chunks[-1].usage.completion_tokens
            except openai.OpenAIError as exc:
                print(f"  stream {i} failed: {exc}")
                return False, 0

        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one_stream, range(8)))
        wall = time.perf_counter() - start
        ok = sum(r[0] for r in results)
        tokens = sum(r[1] for r in results)
    finally:
        proc.terminate()
        proc.wait(10)

    print(f"one request, {args.max_tokens} tokens (same tokens on both paths), median of {args.reps}:")
    print(f"  genlab serve adds {np.median(overhead) * 1000:.1f} ms (95 % CI {low * 1000:.1f}-{high * 1000:.1f}) "
          f"to the model's own {median(model_s) * 1000:.1f} ms")
    print(f"  in-process (another process's model): {local_s * 1000:7.1f} ms; through the server {http_s * 1000:7.1f} ms")
    print(f"8 concurrent streams: {ok}/8 completed, {tokens} tokens in {wall:.2f} s ({tokens / wall:.1f} tokens/s)")
    write("serve_overhead", {"max_tokens": args.max_tokens, "reps": args.reps, "seconds": times,
                             "model_s": model_s, "same_tokens": True,
                             "median_in_process_s": local_s, "median_http_s": http_s,
                             "overhead_ms": float(np.median(overhead) * 1000),
                             "overhead_ci95_ms": [float(low * 1000), float(high * 1000)],
                             "overhead_ratio": float(np.median(np.array(times["http"]) / np.array(model_s))),
                             "concurrent_streams": {"streams": 8, "completed": ok, "tokens": tokens,
                                                    "wall_s": wall}})


if __name__ == "__main__":
    main()
