"""Latency that `genlab serve` adds over an in-process call, and 8 concurrent streams.

Starts `genlab serve` on a free loopback port, then alternates the same request
(greedy, 32 tokens) in-process and through the server with the openai SDK.
The in-process model is loaded in this process; the server has its own copy, and
the two never run at the same time.

    .venv/bin/python bench/serve_overhead.py [--reps 10]
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

import openai
from common import median, write

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
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    home = tempfile.mkdtemp()
    proc, base_url = start_server(home)
    try:
        client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)
        model = get_model("local", store=Store(home + "/bench.db"), source="bench")

        def in_process() -> float:
            start = time.perf_counter()
            model.chat(MESSAGES, temperature=0, max_tokens=args.max_tokens)
            return time.perf_counter() - start

        def over_http() -> float:
            start = time.perf_counter()
            client.chat.completions.create(model="local", messages=MESSAGES, temperature=0,
                                           max_tokens=args.max_tokens)
            return time.perf_counter() - start

        in_process(), over_http()  # warm-up
        times: dict[str, list[float]] = {"in_process": [], "http": []}
        for _ in range(args.reps):
            times["in_process"].append(in_process())
            times["http"].append(over_http())
        local_s, http_s = median(times["in_process"]), median(times["http"])

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

    print(f"one request, {args.max_tokens} tokens, median of {args.reps}:")
    print(f"  in-process      : {local_s * 1000:7.1f} ms")
    print(f"  genlab serve    : {http_s * 1000:7.1f} ms  (+{(http_s - local_s) * 1000:.1f} ms, x{http_s / local_s:.3f})")
    print(f"8 concurrent streams: {ok}/8 completed, {tokens} tokens in {wall:.2f} s ({tokens / wall:.1f} tokens/s)")
    write("serve_overhead", {"max_tokens": args.max_tokens, "reps": args.reps, "seconds": times,
                             "median_in_process_s": local_s, "median_http_s": http_s,
                             "overhead_ms": (http_s - local_s) * 1000, "ratio": http_s / local_s,
                             "concurrent_streams": {"streams": 8, "completed": ok, "tokens": tokens,
                                                    "wall_s": wall}})


if __name__ == "__main__":
    main()
