"""Small helpers shared by the bench scripts: medians, machine facts, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "platform": platform.platform(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def median(values: list[float]) -> float:
    return statistics.median(values)


def rate(passed: int, n: int) -> dict:
    """``passed`` of ``n`` with its 95 % Wilson interval, as the results' JSON holds it."""
    from genlab.train.effect import Rate

    r = Rate.of(int(passed), n)
    return {"passed": r.passed, "n": r.n, "rate": r.rate, "ci95": list(r.ci95)}


def write(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


@contextmanager
def enum_per_token():
    """Enum mode on llama.cpp as it was before labels were scored whole: one grammar over
    all the labels, decoded token by token (for a with/without comparison in one run)."""
    from genlab.models import local

    scored = local.MAX_SCORED_LABELS
    local.MAX_SCORED_LABELS = 0
    try:
        yield
    finally:
        local.MAX_SCORED_LABELS = scored


@contextmanager
def fresh_interpreter_per_run():
    """Sandboxed runs as genlab made them before its forkserver: each in an interpreter of
    its own, started, used once and killed (for a with/without comparison in one run)."""
    from genlab.search.funsearch import sandbox

    class OneShot:
        def __init__(self, python: str):
            self.python = python

        def run(self, job: dict, timeout: float) -> str | None:
            server = sandbox.Forkserver(self.python)
            try:
                return server.run(job, timeout)
            finally:
                server.close()

    shared, sandbox.forkserver = sandbox.forkserver, OneShot
    try:
        yield
    finally:
        sandbox.forkserver = shared
