"""Run untrusted programs in a separate, contained process.

`Sandbox.run` hands each run, with a private working directory, to ``sandbox_child.py``:
a forkserver started once per process in a fresh interpreter with a scrubbed environment,
which forks a supervisor for the run; that supervisor enters new Linux namespaces and
forks the candidate process, which drops to an unprivileged user under rlimits. See
sandbox_child.py for the steps. The working directory is removed
after each run; those of a genlab process killed mid-run (SIGKILL, the OOM killer) are
removed by the next process that runs the sandbox.

What it protects against (as root, the usual case on CI and in containers):
- runaway time: a wall-clock deadline ends with SIGKILL of the candidate's whole
  PID namespace, so nothing it forked survives; RLIMIT_CPU as a second stop;
- memory: RLIMIT_AS (MemoryError inside the candidate, or a kill);
- fork bombs: RLIMIT_NPROC (enforced once the candidate is uid 65534) and the PID
  namespace teardown;
- files: every mount is read-only inside the sandbox; /tmp, /var/tmp and /dev/shm are
  private tmpfs (64 MB); RLIMIT_FSIZE caps any one file; it cannot read root-only files;
- network: an empty network namespace (not even loopback);
- secrets: the environment is scrubbed, so no API key is inherited;
- the score: computed in genlab's process by the spec's score function from the
  returned solution, which the candidate cannot patch.

As root or as a normal user (through an unprivileged user namespace, as bubblewrap
does) the protections are the same:
- runaway time: a wall-clock deadline, then SIGKILL of the candidate's whole PID
  namespace, always, so nothing it forked or daemonized survives; RLIMIT_CPU as a second stop;
- memory and processes: a cgroup v2 limit for the whole sandbox where the machine
  delegates one, otherwise RLIMIT_AS / RLIMIT_NPROC per process (it says which);
- files: a new root holding only the system's and Python's directories, read-only;
  a private 64 MB /tmp; no home, no /run (so no host Unix sockets), no /proc;
  RLIMIT_FSIZE caps any one file;
- privileges: uid 65534 as root, or every capability dropped in a user namespace;
  no new privileges;
- network: an empty network namespace (not even loopback);
- secrets: the environment is scrubbed, so no API key is inherited;
- the score: computed in genlab's process by the spec's score function from the
  returned solution, which the candidate cannot patch.

It fails closed: where the kernel refuses a namespace or a mount (many containers
refuse user namespaces), `SandboxResult.missing` names what is missing and
`require_isolation` refuses to go on unless the user accepted it (--unsafe-sandbox).
Not covered: using CPU and memory up to its limits; kernel exploits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("sandbox_child.py")

#: Modules imported before privileges are dropped (the candidate's user cannot read
#: an interpreter installed under a private home directory).
PRELOAD = ["math", "itertools", "functools", "collections", "heapq", "random", "statistics", "numpy"]


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed run (the paper used 30 s and 2 GB by default)."""

    timeout_s: float = 30.0   # wall clock, for all inputs together
    memory_mb: int = 2048     # address space
    file_mb: int = 16         # largest file it may write
    processes: int = 32       # processes of the sandbox user
    open_files: int = 64
    output_mb: int = 64       # size of the returned solutions


@dataclass
class InputOutcome:
    """What one input gave: a solution, or an error kind and message."""

    solution: Any = None
    kind: str | None = None   # None when it ran; else exception, memory, recursion, timeout, crashed…
    error: str | None = None


@dataclass
class SandboxResult:
    status: str                              # ok, timeout, crashed, too_large, setup_error
    outcomes: dict[str, InputOutcome]
    protections: list[str] = field(default_factory=list)
    detail: str = ""
    wall_s: float = 0.0
    missing: list[str] = field(default_factory=list)   # protections that could not be had

    @property
    def isolated(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict:
        return asdict(self)


_probes: dict[tuple, SandboxResult] = {}


def probe(sandbox: "Sandbox") -> SandboxResult:
    """Run a trivial, trusted program to learn what isolation this machine gives (once per process)."""
    key = (type(sandbox).__name__, sandbox.isolate, sandbox.python)
    if key not in _probes:
        _probes[key] = sandbox.run("def probe(x):\n    return x\n", "probe", {"probe": 1}, preload=[])
    return _probes[key]


def require_isolation(sandbox: "Sandbox", unsafe: bool) -> list[str]:
    """Refuse (ConfigError) unless candidates would be fully isolated or the user accepted
    less; return the missing protections (empty when fully isolated)."""
    from genlab.errors import ConfigError

    result = probe(sandbox)
    if result.status != "ok":
        raise ConfigError(f"the sandbox does not work on this machine ({result.detail}); "
                          "genlab evolve cannot run candidates safely here")
    if result.missing and not unsafe:
        raise ConfigError("the sandbox cannot fully isolate programs on this machine: missing "
                          f"{'; '.join(result.missing)}. Run where unprivileged user namespaces are allowed "
                          "(sysctl kernel.unprivileged_userns_clone=1, or outside this container), or accept "
                          "the risk with --unsafe-sandbox")
    return result.missing


def clean_environment() -> dict[str, str]:
    """Return the only environment a sandboxed program gets: no keys, no tokens."""
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


class Sandbox:
    """Runs a program's entry function on inputs in a contained process."""

    def __init__(self, limits: Limits | None = None, isolate: bool = True, python: str | None = None):
        self.limits = limits or Limits()
        self.isolate = isolate
        self.python = python or sys.executable

    def run(self, program: str, entry: str, inputs: dict[str, Any], preload: list[str] | None = None) -> SandboxResult:
        """Run ``entry(input)`` for each input; never raises for anything the program does."""
        workdir = _new_workdir()
        os.chmod(workdir, 0o777)  # the candidate runs as an unprivileged user
        job = {"program": program, "entry": entry, "inputs": list(inputs.items()),
               "preload": list(dict.fromkeys([*PRELOAD, *(preload or [])])),
               "limits": asdict(self.limits), "isolate": self.isolate, "workdir": workdir,
               # The launching process's import path: a Ray worker's interpreter may be the
               # base Python rather than the virtual environment genlab runs in.
               "sys_path": [p for p in sys.path if p and os.path.isabs(p)]}
        started = time.perf_counter()
        try:
            # The supervisor enforces the deadline; this wait only guards against the
            # supervisor itself hanging (it never runs candidate code).
            text = forkserver(self.python).run(job, self.limits.timeout_s + 30)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        wall = time.perf_counter() - started
        try:
            report = json.loads(text)
        except (TypeError, ValueError):
            return self._all_failed(inputs, "crashed", "sandbox supervisor failed: "
                                    + ("it did not answer" if text is None else "no report"), [], wall)
        if report.get("cgroup"):
            try:
                os.rmdir(report["cgroup"])
            except OSError:
                pass
        return self._outcomes(inputs, report, wall)

    def _outcomes(self, inputs: dict, report: dict, wall: float) -> SandboxResult:
        status, payload = report["status"], report.get("payload") or {}
        protections, missing = report.get("protections", []), report.get("missing", [])
        if status != "ok":
            return self._all_failed(inputs, status, report.get("detail", ""), protections, wall, missing)
        if "setup_error" in payload:
            return self._all_failed(inputs, "setup_error", payload["setup_error"], protections, wall, missing)
        results = payload.get("results", {})
        outcomes = {}
        for name in inputs:
            got = results.get(name)
            if not isinstance(got, dict):
                error = payload.get("program_error") or "no result for this input"
                outcomes[name] = InputOutcome(kind="exception", error=error)
            elif "solution" in got:
                outcomes[name] = InputOutcome(solution=got["solution"])
            else:
                outcomes[name] = InputOutcome(kind=str(got.get("kind", "exception")), error=str(got.get("error")))
        return SandboxResult("ok", outcomes, protections, payload.get("program_error", ""), wall, missing)

    @staticmethod
    def _all_failed(inputs: dict, status: str, detail: str, protections: list, wall: float,
                    missing: list | None = None) -> SandboxResult:
        return SandboxResult(status, {name: InputOutcome(kind=status, error=detail) for name in inputs},
                             protections, detail, wall,
                             ["no report from the supervisor"] if missing is None else missing)


WORKDIR_PREFIX = "genlab-sandbox-"
_swept = False


def _pid_namespace() -> int:
    """This process's PID namespace (0: unknown). A work folder named by a pid of this
    namespace that no longer runs was left by a process killed before its `finally`."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _new_workdir() -> str:
    """A private work folder for one run, named by PID namespace and pid; the first call in a
    process removes the folders of genlab processes killed by SIGKILL or the OOM killer."""
    global _swept
    if not _swept:
        _swept = True
        _remove_orphaned_workdirs()
    return tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{_pid_namespace()}-{os.getpid()}-")


def _remove_orphaned_workdirs() -> None:
    namespace = _pid_namespace()
    if not namespace:
        return  # an unknown namespace: its pids cannot be checked
    for path in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}{namespace}-*-*"):
        pid = path.name.split("-")[3]
        try:
            mine = path.stat().st_uid == os.getuid()
        except OSError:
            continue  # removed meanwhile
        if mine and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class Forkserver:
    """One ``sandbox_child.py`` process that forks a supervisor per run (see its `serve`).

    Runs may come from several threads at once: each is written as one line, and a reader
    thread hands each report to the run waiting for it. A forkserver that exits, or a run
    whose supervisor outlives its own deadline, ends this one (its runs report no result);
    `forkserver` then starts another."""

    def __init__(self, python: str):
        self.proc = subprocess.Popen([python, "-I", "-B", str(CHILD)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir(),
                                     env=clean_environment(), start_new_session=True)
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.waiting: dict[int, list] = {}     # run id -> [answered, report]
        self.next_id = 0
        self.alive = True
        self.owner = os.getpid()  # a forked copy of genlab must not share its pipes
        threading.Thread(target=self._read, name="genlab-sandbox-reports", daemon=True).start()

    def run(self, job: dict, timeout: float) -> str | None:
        """The report of one job, or None where none came within ``timeout`` seconds."""
        with self.lock:
            run_id, self.next_id = self.next_id, self.next_id + 1
            slot = self.waiting[run_id] = [threading.Event(), None]
        line = json.dumps({"id": run_id, "job": job}).encode() + b"\n"
        try:
            # One line at a time, and never under self.lock: a write can wait until the
            # forkserver has sent a report, which the reader hands on under that lock.
            with self.write_lock:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
        except OSError:
            self.alive = False
        answered = self.alive and slot[0].wait(timeout)
        with self.lock:
            self.waiting.pop(run_id, None)
        if not answered:
            self.close()
        return slot[1]

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not a report: the run it was for ends at its timeout
            with self.lock:
                slot = self.waiting.get(message["id"])
            if slot is not None:
                slot[1] = message["report"]
                slot[0].set()
        with self.lock:  # the forkserver has gone: no run waits for it in vain
            self.alive = False
            for slot in self.waiting.values():
                slot[0].set()

    def close(self) -> None:
        self.alive = False
        if self.proc.poll() is None:  # not reaped yet, so its pid cannot belong to another process
            os.killpg(self.proc.pid, signal.SIGKILL)  # its supervisors die with it (parent-death signal)
        self.proc.wait()


_forkservers: dict[str, Forkserver] = {}
_forkservers_lock = threading.Lock()


def forkserver(python: str) -> Forkserver:
    """This process's forkserver for ``python``, started on first use or after one ended."""
    with _forkservers_lock:
        server = _forkservers.get(python)
        if server is None or not server.alive or server.owner != os.getpid():
            server = _forkservers[python] = Forkserver(python)
        return server
