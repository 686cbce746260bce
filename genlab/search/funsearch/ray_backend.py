"""Run evaluations on Ray: the same sandbox, on whichever node of a cluster has a free CPU.

`genlab evolve --backend ray` keeps the loop, the database and the trusted scoring in
the driver; only the sandboxed runs of candidate programs become Ray tasks, one CPU
each. Without RAY_ADDRESS, a local Ray instance is started; with it (e.g.
``RAY_ADDRESS=ray://head:10001``), genlab joins that cluster, whose nodes need
genlab installed (``pip install genlab[ray]``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from genlab.errors import ConfigError
from genlab.search.funsearch.sandbox import Limits, Sandbox, SandboxResult

_remote_run = None


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'genlab[ray]'") from None
    return ray


def ensure_ray(num_cpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS, or start a local Ray instance, once per process."""
    global _remote_run
    ray = _ray()
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "ignore_reinit_error": True}
        if not address:
            options["num_cpus"] = num_cpus
        ray.init(address=address, **options)
    if _remote_run is None:
        @ray.remote(num_cpus=1, max_retries=0)
        def run_in_sandbox(limits: dict, isolate: bool, program: str, entry: str, inputs: dict,
                           preload: list) -> SandboxResult:
            return Sandbox(Limits(**limits), isolate=isolate).run(program, entry, inputs, preload)

        _remote_run = run_in_sandbox


class RaySandbox(Sandbox):
    """A Sandbox whose runs are Ray tasks; results come back to the caller's thread."""

    def run(self, program: str, entry: str, inputs: dict[str, Any], preload: list[str] | None = None) -> SandboxResult:
        ray = _ray()
        ref = _remote_run.remote(asdict(self.limits), self.isolate, program, entry, inputs, preload or [])
        return ray.get(ref)


class RayExecutor(ThreadPoolExecutor):
    """Threads that each wait on one Ray task: as many in flight as the cluster takes."""

    def __init__(self, max_workers: int):
        ensure_ray(max_workers)
        super().__init__(max_workers, thread_name_prefix="genlab-ray")
