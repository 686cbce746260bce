"""Run untrusted programs in a separate, contained process.

`Sandbox.run` starts ``sandbox_child.py`` in a fresh interpreter with a scrubbed
environment and a private working directory; that supervisor enters new Linux
namespaces and forks the candidate process, which drops to an unprivileged user
under rlimits. See sandbox_child.py for the steps.

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

What it does not protect against: reading world-readable files; using CPU and
memory up to its limits; kernel exploits. Without root, the supervisor tries an
unprivileged user + network namespace and otherwise runs with rlimits, a private
working directory and a process-group kill only; `SandboxResult.protections` says
what was in force, and `genlab evolve` prints it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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

    def to_dict(self) -> dict:
        return asdict(self)


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
        workdir = tempfile.mkdtemp(prefix="genlab-sandbox-")
        os.chmod(workdir, 0o777)  # the candidate runs as an unprivileged user
        job = {"program": program, "entry": entry, "inputs": list(inputs.items()),
               "preload": list(dict.fromkeys([*PRELOAD, *(preload or [])])),
               "limits": asdict(self.limits), "isolate": self.isolate, "workdir": workdir,
               # The launching process's import path: a Ray worker's interpreter may be the
               # base Python rather than the virtual environment genlab runs in.
               "sys_path": [p for p in sys.path if p and os.path.isabs(p)]}
        started = time.perf_counter()
        proc = subprocess.Popen([self.python, "-I", "-B", str(CHILD)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
                                env=clean_environment(), start_new_session=True)
        try:
            # The supervisor enforces the deadline; this one only guards against the
            # supervisor itself hanging (it never runs candidate code).
            out, err = proc.communicate(json.dumps(job).encode(), timeout=self.limits.timeout_s + 30)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = b"", b"supervisor did not answer"
        finally:
            _kill_group(proc)
            shutil.rmtree(workdir, ignore_errors=True)
        wall = time.perf_counter() - started
        try:
            report = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return self._all_failed(inputs, "crashed", f"sandbox supervisor failed: {detail[0]}", [], wall)
        return self._outcomes(inputs, report, wall)

    def _outcomes(self, inputs: dict, report: dict, wall: float) -> SandboxResult:
        status, payload = report["status"], report.get("payload") or {}
        protections = report.get("protections", [])
        if status != "ok":
            return self._all_failed(inputs, status, report.get("detail", ""), protections, wall)
        if "setup_error" in payload:
            return self._all_failed(inputs, "setup_error", payload["setup_error"], protections, wall)
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
        return SandboxResult("ok", outcomes, protections, payload.get("program_error", ""), wall)

    @staticmethod
    def _all_failed(inputs: dict, status: str, detail: str, protections: list, wall: float) -> SandboxResult:
        return SandboxResult(status, {name: InputOutcome(kind=status, error=detail) for name in inputs},
                             protections, detail, wall)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
