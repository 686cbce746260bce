"""`genlab serve` under load: 64 concurrent clients against the embedded model.

Half the clients stream, one in eight of those goes away after two chunks, the rest
wait for whole replies; each sends request after request until the time is up. A
separate prober asks /health every 100 ms. The server runs with its defaults (4
requests generating, 32 waiting, 30 s wait limit).

Counts: answered (200), refused as busy (429 with Retry-After), 5xx (must be 0),
hangs (no answer within 120 s, must be 0), p50/p95 latency of answered requests,
and the slowest /health answer.

    .venv/bin/python bench/serve_load.py [--clients 64] [--seconds 60]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import write

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import start_server  # noqa: E402  (the same real server the tests start)

HANG_S = 120


def one_request(port: int, i: int, stream: bool, leave_early: bool) -> tuple[str, float]:
    body = json.dumps({"model": "local", "max_tokens": 32, "temperature": 0.7, "stream": stream,
                       "messages": [{"role": "user", "content": f"Tell me fact number {i} about owls."}]})
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_S)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        if answer.status == 200 and stream and leave_early:
            answer.read(200)  # about two events, then the client goes away
            conn.sock.shutdown(socket.SHUT_RDWR)
            return "left", time.perf_counter() - started
        answer.read()
        kind = "ok" if answer.status == 200 else "busy" if answer.status == 429 else str(answer.status)
        if answer.status == 429 and not answer.getheader("Retry-After"):
            kind = "429 without Retry-After"
        return kind, time.perf_counter() - started
    except TimeoutError:
        return "hang", time.perf_counter() - started
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()

    server = start_server(Path(tempfile.mkdtemp()) / "home")
    outcomes: list[tuple[str, float, bool]] = []
    health: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def client(c: int) -> None:
        stream, n = c % 2 == 0, 0
        while time.monotonic() < deadline:
            kind, seconds = one_request(server.port, c * 1000 + n, stream, leave_early=stream and c % 8 == 0)
            with lock:
                outcomes.append((kind, seconds, stream))
            n += 1
            if kind == "busy":
                time.sleep(1)  # as Retry-After asks

    def prober() -> None:
        while time.monotonic() < deadline + 5:
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HANG_S)
            conn.request("GET", "/health")
            conn.getresponse().read()
            conn.close()
            health.append(time.perf_counter() - started)
            time.sleep(0.1)

    try:
        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        threads.append(threading.Thread(target=prober))
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        rows = [dict(r) for r in server.store().execute("SELECT error, completion_tokens FROM calls")]
    finally:
        server.proc.terminate()
        server.proc.wait(10)

    kinds: dict[str, int] = {}
    for kind, _, _ in outcomes:
        kinds[kind] = kinds.get(kind, 0) + 1
    answered = sorted(s for kind, s, _ in outcomes if kind == "ok")

    def pct(p: float) -> float | None:
        return answered[min(len(answered) - 1, int(p * len(answered)))] if answered else None

    server_errors = sum(n for kind, n in kinds.items() if kind.startswith("5"))
    result = {
        "clients": args.clients, "seconds": args.seconds, "wall_s": wall, "requests": len(outcomes),
        "outcomes": kinds, "answered": kinds.get("ok", 0), "busy_429": kinds.get("busy", 0),
        "left_early": kinds.get("left", 0), "hangs": kinds.get("hang", 0), "server_errors_5xx": server_errors,
        "latency_p50_s": pct(0.5), "latency_p95_s": pct(0.95),
        "health_checks": len(health), "health_max_s": max(health), "health_p50_s": sorted(health)[len(health) // 2],
        "server_calls": {"logged": len(rows), "cancelled": sum(r["error"] == "cancelled" for r in rows),
                         "tokens": sum(r["completion_tokens"] for r in rows)},
    }
    print(json.dumps(result, indent=2))
    write("serve_load", result)
    if result["hangs"] or server_errors:
        raise SystemExit("FAIL: hangs or 5xx under load")


if __name__ == "__main__":
    main()
