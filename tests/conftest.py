"""Shared fixtures: a private genlab home per test, the real embedded model, and a
real `genlab serve` on a free loopback port."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from genlab.models import get_model
from genlab.store import Store

KEY_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GENLAB_API_KEY", "GENLAB_SERVE_API_KEY")


@pytest.fixture(autouse=True, scope="session")
def genlab_cache(tmp_path_factory) -> Path:
    """One cache per test run (the trainable copy of the embedded model, ~516 MiB, is built
    there once), never the user's own."""
    cache = tmp_path_factory.mktemp("genlab-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENLAB_CACHE", str(cache))
        yield cache


@pytest.fixture(autouse=True)
def genlab_home(tmp_path, monkeypatch) -> Path:
    """Point genlab's home at a temp dir and hide the user's API keys."""
    home = tmp_path / "genlab-home"
    monkeypatch.setenv("GENLAB_HOME", str(home))
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def store(genlab_home) -> Store:
    return Store(genlab_home / "genlab.db")


@pytest.fixture
def local(store):
    """The real embedded model, logging to this test's store."""
    return get_model("local", store=store, source="test")


def install_plugin(tmp_path: Path, monkeypatch, module: str, source: str, entry: str,
                   group: str = "genlab.backends") -> None:
    """Install ``module`` (from ``source``) as a package whose entry point ``entry`` (name = value)
    is in ``group``, the way pip would leave it, and make genlab's registry look again."""
    from genlab.models import registry

    (tmp_path / f"{module}.py").write_text(source)
    info = tmp_path / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.plugins.cache_clear()


def interrupted(args: list[str], ready, env: dict | None = None, seconds: float = 300) -> subprocess.CompletedProcess:
    """Run `genlab ARGS`, press Ctrl-C once ``ready()`` holds (SIGINT, as a terminal sends it to a
    process that has not set it aside), and return what the command did."""
    import signal

    process = subprocess.Popen([sys.executable, "-m", "genlab.cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + seconds
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=seconds)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def forward(handler, upstream: str, body: bytes) -> None:
    """For proxies in tests: send a POST on to ``upstream`` (same path and key) and copy its answer back."""
    request = urllib.request.Request(upstream + handler.path, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": handler.headers["Authorization"]})
    with urllib.request.urlopen(request, timeout=120) as answer:
        payload = answer.read()
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.headers["Content-Type"])
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not come up in {seconds}s")


class Served:
    """A running `genlab serve` process."""

    def __init__(self, port: int, home: Path, key: str, proc: subprocess.Popen):
        self.port, self.home, self.key, self.proc = port, home, key, proc
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def store(self) -> Store:
        return Store(self.home / "genlab.db")


def start_server(home: Path, *args: str, key: str | None = None, seconds: float = 60) -> Served:
    """`genlab serve --port 0`: the server takes a free port itself (no window in which another
    process could take the one a test picked) and names it in its "genlab serving … at" line."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env["GENLAB_HOME"] = str(home)
    cmd = [sys.executable, "-m", "genlab.cli", "serve", "--port", "0", *args]
    if key:
        cmd += ["--api-key", key]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = announced_port(proc, rb"genlab serving .* at http://127\.0\.0\.1:(\d+)/v1 ", seconds)
    wait_for(f"http://127.0.0.1:{port}/health", proc)
    return Served(port, home, key or "", proc)


def announced_port(proc: subprocess.Popen, pattern: bytes, seconds: float = 60) -> int:
    """The port a server started with --port 0 names on stderr (group 1 of ``pattern``)."""
    # Raw reads of the pipe: a text wrapper's buffer could hold the line while select() waits.
    deadline, said, fd = time.time() + seconds, b"", proc.stderr.fileno()
    while time.time() < deadline and select.select([fd], [], [], deadline - time.time())[0]:
        chunk = os.read(fd, 4096)
        if not chunk:                                   # the server exited
            break
        said += chunk
        if match := re.search(pattern, said):
            return int(match.group(1))
    proc.kill()
    raise RuntimeError(f"the server did not say where it serves within {seconds} s: {said.decode(errors='replace')}")


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """`genlab serve` over the embedded model, with an API key, for the whole session."""
    server = start_server(tmp_path_factory.mktemp("served-home"), "--model", "local", key="test-key")
    yield server
    server.proc.terminate()
    server.proc.wait(10)


VELMORA = Path(__file__).resolve().parent.parent / "examples" / "notebook" / "velmora"
VELMORA_QA = VELMORA.parent / "velmora-qa.jsonl"


@pytest.fixture(scope="session")
def velmora_db(tmp_path_factory) -> Path:
    """The example notebook, indexed once per session (copied into each test's home)."""
    from genlab.ground.notebook import Notebook

    home = tmp_path_factory.mktemp("velmora-home")
    previous = os.environ.get("GENLAB_HOME")
    os.environ["GENLAB_HOME"] = str(home)
    try:
        notebook = Notebook.create("velmora")
        notebook.add([VELMORA])
        notebook._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        notebook.close()
    finally:
        if previous is None:
            os.environ.pop("GENLAB_HOME", None)
        else:
            os.environ["GENLAB_HOME"] = previous
    return home / "notebooks" / "velmora.db"


def copy_velmora(velmora_db: Path, home: Path) -> None:
    """Put a copy of the indexed example notebook into the genlab home ``home``."""
    import shutil

    (home / "notebooks").mkdir(parents=True, exist_ok=True)
    shutil.copy(velmora_db, home / "notebooks" / "velmora.db")


@pytest.fixture
def velmora(velmora_db, genlab_home):
    """This test's own copy of the example notebook."""
    from genlab.ground.notebook import Notebook

    copy_velmora(velmora_db, genlab_home)
    return Notebook.open("velmora")
