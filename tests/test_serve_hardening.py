"""`genlab serve` under load, disconnects and hostile input: a real server on loopback,
the real embedded model, raw sockets where a well-behaved client would not do it."""

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from conftest import announced_port, free_port, start_server
from genlab.errors import BudgetExceeded, ConfigError
from genlab.models import Budget, Usage
from genlab.serve.guard import check_binding, depth_of

LONG = [{"role": "user", "content": "Write a very long story about a lighthouse keeper and the sea."}]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A server with room for 2 requests generating and 3 waiting, each at most 1 s, and 1 s
    for a request body to arrive."""
    server = start_server(tmp_path_factory.mktemp("small-home"), "--slots", "2", "--queue", "3",
                          "--queue-timeout", "1", "--max-body-kb", "64", "--allow-host", "proxy.internal",
                          "--body-timeout", "1")
    yield server
    server.proc.terminate()
    server.proc.wait(10)


def raw(server, method: str, path: str, body: bytes = b"", headers: dict | None = None,
        timeout: float = 60) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    return answer.status, dict(answer.getheaders()), json.loads(data) if data else {}


def post(server, body: dict, **kwargs) -> tuple[int, dict, dict]:
    return raw(server, "POST", "/v1/chat/completions", json.dumps(body).encode(), **kwargs)


def calls(server) -> list[dict]:
    return [dict(r) for r in server.store().execute("SELECT * FROM calls ORDER BY id")]


def wait_idle(server, seconds: float = 20) -> dict:
    deadline = time.time() + seconds
    while time.time() < deadline:
        status, _, health = raw(server, "GET", "/health", timeout=2)
        if health["generating"] == 0 and health["waiting"] == 0:
            return health
        time.sleep(0.1)
    raise AssertionError(f"the server never became idle: {health}")


# -- load -------------------------------------------------------------------------------

def test_overload_is_429_with_retry_after_and_health_always_answers(small):
    body = {"model": "local", "messages": LONG, "max_tokens": 48, "temperature": 0}
    health_times = []
    stop = threading.Event()

    def probe_health():
        while not stop.is_set():
            started = time.perf_counter()
            status, _, _ = raw(small, "GET", "/health", timeout=5)
            assert status == 200
            health_times.append(time.perf_counter() - started)
            time.sleep(0.05)

    prober = threading.Thread(target=probe_health)
    prober.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: post(small, body, timeout=60), range(16)))
    finally:
        stop.set()
        prober.join()
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 2 and statuses.count(429) >= 1
    for status, headers, data in results:
        if status == 429:
            assert int(headers["retry-after"]) >= 1 and data["error"]["code"] == "rate_limit_exceeded"
    assert max(health_times) < 1.0, f"/health took {max(health_times):.2f} s under load"
    wait_idle(small)
    assert post(small, {**body, "max_tokens": 2})[0] == 200  # and it recovers


# -- disconnects ---------------------------------------------------------------------------

def _cancelled_row(server, before: int, seconds: float = 10) -> dict:
    deadline = time.time() + seconds
    while time.time() < deadline:
        rows = calls(server)[before:]
        if rows:
            return rows[-1]
        time.sleep(0.1)
    raise AssertionError("no call row was written")


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_goes_away_stops_its_generation(small, stream):
    wait_idle(small)
    before = len(calls(small))
    body = json.dumps({"model": "local", "messages": LONG, "max_tokens": 1000, "temperature": 0,
                       "stream": stream}).encode()
    sock = socket.create_connection(("127.0.0.1", small.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    if stream:
        received = b""
        while received.count(b"data: ") < 4:  # a few tokens, then the client goes away
            received += sock.recv(4096)
    else:
        time.sleep(0.6)
    sock.close()
    closed = time.perf_counter()
    row = _cancelled_row(small, before)
    health = wait_idle(small, seconds=5)
    assert time.perf_counter() - closed < 5 and health["generating"] == 0
    assert row["error"] == "cancelled"
    # 1000 tokens take ~10 s on two cores; it stopped far sooner, and counted what it made.
    assert 0 < row["completion_tokens"] < 200


# -- limits and hostile input --------------------------------------------------------------

@pytest.mark.parametrize("body, param", [
    ({"n": 64}, "n"),
    ({"max_tokens": 1e9}, "max_tokens"),
    ({"n": 8, "max_tokens": 4000}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": ["x" * 500]}, "stop"),
    ({"messages": [{"role": "user", "content": "hi"}] * 300}, "messages"),
    ({"response_format": {"type": "enum", "enum": [str(i) for i in range(300)]}}, "response_format"),
    ({"stream": True, "stream_options": "yes"}, "stream_options"),
])
def test_requests_over_a_limit_are_400_naming_it(small, body, param):
    status, _, data = post(small, {"model": "local", "messages": [{"role": "user", "content": "hi"}], **body})
    assert status == 400 and data["error"]["param"] == param, data


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "local", "messages": "hi"}),
    ("/v1/chat/completions", {"model": "local", "messages": [{"role": "wizard", "content": "hi"}]}),
    ("/v1/chat/completions", {"model": "local", "messages": [{"role": "user", "content": 5}]}),
    ("/v1/chat/completions", {"model": "local", "messages": [{"role": "user", "content": [{"type": "nope"}]}]}),
    ("/v1/chat/completions", {"model": "local", "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "n": 1.5}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "max_tokens": -1}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "stop": {"a": 1}}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "stop": [1, 2]}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "response_format": {"type": "xml"}}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "response_format": {"type": "json_schema",
                                                                                    "json_schema": "x"}}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "response_format": {"type": "enum", "enum": [1]}}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "tools": [{"type": "function"}]}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "tools": "x"}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "logit_bias": {"abc": 5}}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "top_logprobs": 50, "logprobs": True}),
    ("/v1/chat/completions", {"model": "local", "messages": HI, "top_k": -1}),
    ("/v1/chat/completions", b'{"model": "local", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'),
    ("/v1/chat/completions", b'{"model": "local", "messages": [{"role": "user", "content": "\\udfff"}]}'),
    ("/v1/completions", {"model": "local", "prompt": [1, 2, 3]}),
    ("/v1/completions", {"model": "local", "prompt": "a", "logprobs": 10}),
    ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": [[1, 2]]}),
    ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "a", "dimensions": 3}),
    ("/v1/embeddings", b'{"model": "all-MiniLM-L6-v2", "input": ["a", "\\ud800"]}'),
    ("/v1/images/generations", {"model": "cards", "prompt": "", "n": 99}),
    ("/v1/audio/speech", {"model": "espeak", "input": "", "voice": 5}),
    ("/v1/feedback", {"response_id": 5, "rating": "sideways"}),
])
def test_malformed_bodies_are_4xx_in_openais_envelope_never_5xx(small, path, body):
    """A sweep of wrong shapes and types across every route: each is refused before any
    model work, naming the problem; none reaches a model or the server's incident log.
    (A text part without its text, and a lone surrogate, were 5xx incidents.)"""
    status, _, data = raw(small, "POST", path, body if isinstance(body, bytes) else json.dumps(body).encode())
    assert 400 <= status < 500 and data["error"]["message"], (status, data)
    assert "incident" not in data["error"]["message"]


def test_a_deeply_nested_schema_is_400_not_500(small):
    schema: dict = {"type": "string"}
    for _ in range(300):
        schema = {"type": "object", "properties": {"a": schema}}
    status, _, data = post(small, {"model": "local", "messages": [{"role": "user", "content": "hi"}],
                                   "response_format": {"type": "json_schema",
                                                       "json_schema": {"name": "deep", "schema": schema}}})
    assert status == 400 and "nests deeper" in data["error"]["message"]
    deep = b"[" * 100_000 + b"]" * 100_000
    assert raw(small, "POST", "/v1/chat/completions", deep)[0] in (400, 413)
    assert depth_of(schema, 20) > 20


def test_body_size_content_type_and_host(small):
    big = json.dumps({"model": "local", "messages": [{"role": "user", "content": "x" * 100_000}]}).encode()
    status, _, data = raw(small, "POST", "/v1/chat/completions", big)
    assert status == 413 and "over 65536 bytes" in data["error"]["message"]
    hello = json.dumps({"model": "local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    status, _, data = raw(small, "POST", "/v1/chat/completions", hello.encode(), headers={"Content-Type": "text/plain"})
    assert status == 415  # a web page may send text/plain without a preflight
    status, _, data = raw(small, "POST", "/v1/chat/completions", hello.encode(), headers={"Host": "evil.example:80"})
    assert status == 403 and data["error"]["code"] == "host_not_allowed"  # DNS rebinding
    for name in (f"localhost:{small.port}", "proxy.internal"):  # loopback names, and one allowed by --allow-host
        assert raw(small, "POST", "/v1/chat/completions", hello.encode(), headers={"Host": name})[0] == 200


def test_a_body_that_never_arrives_whole_is_408_within_the_timeout(small):
    """A client that announces more body than it sends no longer holds its connection for ever."""
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{small.port}\r\n"
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model": "local"')
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        started = time.time()
        sock.sendall(head.encode())
        reply = b""
        while b"request_timeout" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
        waited = time.time() - started
    assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply
    assert 0.9 < waited < 5
    assert raw(small, "GET", "/health")[0] == 200


def test_health_lists_no_model_specs(small):
    status, _, data = raw(small, "GET", "/health")
    assert status == 200 and "models" not in data and "local" not in json.dumps(data)


def test_refuses_to_bind_beyond_loopback_without_a_key(tmp_path):
    with pytest.raises(ConfigError, match="GENLAB_SERVE_API_KEY"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", "k")
    check_binding("127.0.0.1", None)
    out = subprocess.run([sys.executable, "-m", "genlab.cli", "serve", "--host", "0.0.0.0", "--port",
                          str(free_port())], capture_output=True, text=True, timeout=60,
                         env={"GENLAB_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1 and "without an API key" in out.stderr and "Traceback" not in out.stderr


def test_a_port_in_use_is_refused_at_once_in_one_line(tmp_path):
    """The port is bound before the model loads: a taken one is one line with the fix, where
    uvicorn's own bind failed after the warm-up and after "genlab serving … at" was printed."""
    env = {"GENLAB_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "genlab.cli", "serve", "--port", str(port)],
                             capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1 and out.stderr.startswith(f"error: cannot serve on 127.0.0.1:{port}: ")
    assert "choose another --port" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = subprocess.run([sys.executable, "-m", "genlab.cli", "serve", "--port", "70000"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2 and "Invalid value for '--port'" in out.stderr and "Traceback" not in out.stderr


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1) to serve on")
def test_an_ipv6_host_is_served_and_printed_as_a_url(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "genlab.cli", "serve", "--host", "::1", "--port", "0"],
                            stderr=subprocess.PIPE, text=True,
                            env={"GENLAB_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    try:
        port = announced_port(proc, rb"genlab serving local at http://\[::1\]:(\d+)/v1 ")
        conn = http.client.HTTPConnection("::1", port, timeout=10)
        conn.request("GET", "/health", headers={"Host": f"[::1]:{port}"})
        assert conn.getresponse().status == 200
    finally:
        proc.terminate()
        proc.wait(10)


# -- credentials and errors ----------------------------------------------------------------

class _DiesMidStream(BaseHTTPRequestHandler):
    """An upstream that sends one chunk of a stream, then drops the connection."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.flush()
        self.wfile.write(b"data: {not json\n\n")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_credentials_in_urls_never_reach_clients_or_the_store(tmp_path):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _DiesMidStream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    spec = f"http://alice:s3cret@127.0.0.1:{upstream.server_address[1]}/v1?key=hunter2#m"
    dead = "http://bob:pa55@127.0.0.1:9/v1#m"
    server = start_server(tmp_path / "home", "-m", spec, "-m", dead)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        names = [m.id for m in client.models.list()]
        assert all("s3cret" not in n and "hunter2" not in n and "pa55" not in n for n in names)
        assert "***@" in names[0]
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model=names[1], messages=LONG, max_tokens=5)
        message = info.value.body["message"]
        assert info.value.status_code >= 500 and "incident" in message and "pa55" not in message
        assert "Connection" not in message  # no exception text from inside genlab
        # An error in the middle of a stream ends it with an error event, then [DONE].
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(
            {"model": names[0], "messages": LONG, "stream": True}), headers={"Content-Type": "application/json"})
        events = conn.getresponse().read().decode().split("\n\n")
        events = [e.removeprefix("data: ") for e in events if e]
        assert events[-1] == "[DONE]" and "error" in json.loads(events[-2])
        assert "s3cret" not in events[-2] and "hunter2" not in events[-2]
        stored = json.dumps(calls(server))
        assert "s3cret" not in stored and "hunter2" not in stored and "pa55" not in stored
    finally:
        server.proc.terminate()
        server.proc.wait(10)
        upstream.shutdown()


# -- budget ----------------------------------------------------------------------------------

def test_concurrent_calls_cannot_overspend_a_usd_budget():
    budget = Budget(usd=0.01)
    worst = Usage(prompt_tokens=1000, completion_tokens=3000)  # gemini-2.5-flash: $0.0078 at most
    held = budget.reserve("gemini-2.5-flash", False, worst)
    with pytest.raises(BudgetExceeded, match="held by calls in flight"):
        budget.reserve("gemini-2.5-flash", False, worst)  # a second one at once could overspend
    budget.settle(held, Usage(100, 0, 50), 0.0002)
    assert budget.reserved_usd == 0 and budget.spent_usd == pytest.approx(0.0002)
    budget.settle(budget.reserve("gemini-2.5-flash", False, worst), Usage(10, 0, 10), 0.0001)
    assert budget.calls == 2


def test_serve_reserves_the_budget_for_calls_in_flight(tmp_path):
    """Two concurrent calls to a priced model whose worst cases together exceed the budget:
    one is answered, the other is refused with 429 insufficient_quota, never both run."""
    upstream = start_server(tmp_path / "up")
    home = tmp_path / "gateway"
    home.mkdir()
    (home / "prices.json").write_text(json.dumps({"models": {"local": {"input_cost_per_token": 1e-6,
                                                                       "output_cost_per_token": 1e-4}}}))
    gateway = start_server(home, "-m", f"http://127.0.0.1:{upstream.port}/v1#local", "--budget-usd", "0.015")
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key="none", max_retries=0)
        name = client.models.list().data[0].id

        def ask(_):
            try:
                client.chat.completions.create(model=name, messages=LONG, max_tokens=100, temperature=0)
                return "ok"
            except openai.RateLimitError as exc:
                return exc.body["code"]

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(ask, range(2)))
        assert outcomes == ["insufficient_quota", "ok"]  # each may cost $0.01; only one fits
    finally:
        for server in (gateway, upstream):
            server.proc.terminate()
            server.proc.wait(10)
