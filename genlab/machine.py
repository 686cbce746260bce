"""What this machine lets genlab use: its cores, and how many threads a model gets.

Two cores are the common case. More threads than cores makes llama.cpp and torch
several times slower (threads spin-wait), so every component asks here.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_count() -> int:
    """Threads for one model (llama.cpp, torch): GENLAB_THREADS, else every usable core."""
    if os.environ.get("GENLAB_THREADS"):
        return max(1, int(os.environ["GENLAB_THREADS"]))
    return usable_cores()
