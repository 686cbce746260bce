"""What this machine lets genlab use: its cores, how many threads a model gets, how busy
other processes keep them, and the ports genlab serve and genlab eval view listen on.

Two cores are the common case. More threads than cores makes llama.cpp and torch
several times slower (threads spin-wait), so every component asks here.
"""

from __future__ import annotations

import errno
import os
import socket
import time

from genlab.errors import ConfigError


def usable_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_count() -> int:
    """Threads for one model (llama.cpp, torch): GENLAB_THREADS, else every usable core."""
    return int(env_number("GENLAB_THREADS", usable_cores(), integer=True, minimum=1, unit="threads"))


def busy_cores(seconds: float = 0.25) -> float | None:
    """How many of this process's cores other processes keep busy: Linux's per-core counters
    over ``seconds``, less this process's own time. None where they cannot be read."""
    mine = {f"cpu{n}" for n in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else set()

    def ticks() -> tuple[int, int, float]:
        busy = total = 0
        with open("/proc/stat") as stat:
            for line in stat:
                name, *fields = line.split()
                if name in mine:   # user nice system idle iowait irq softirq steal (guest is in user)
                    counts = [int(field) for field in fields[:8]]
                    total, busy = total + sum(counts), busy + sum(counts) - counts[3] - counts[4]
        return busy, total, time.process_time()

    try:
        busy_before, total_before, own_before = ticks()
        time.sleep(seconds)
        busy_after, total_after, own_after = ticks()
    except (OSError, ValueError, IndexError):
        return None
    if total_after <= total_before:
        return None
    busy = len(mine) * (busy_after - busy_before) / (total_after - total_before)
    return max(0.0, busy - (own_after - own_before) / seconds)


def env_number(name: str, default: float, *, integer: bool = False, minimum: float = 0, unit: str = "") -> float:
    """A number from the environment variable ``name`` (``default`` when unset or empty); a value
    that is not one, or is below ``minimum``, is a ConfigError naming the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name}={text!r}: give {kind} of {unit or 'units'} from {minimum:g} up, or unset it")
    return value


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (0: any free port). A server binds before it loads
    anything, so that a port in use is a one-line error in a second, not a traceback or a
    log line after the warm-up."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot serve on {host}: {exc.strerror}; give an address or a name this machine "
                          "resolves (--host 127.0.0.1)") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # a restart may reuse a port in TIME_WAIT
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fix = "something else listens there; stop it or choose another --port"
        elif exc.errno == errno.EACCES:
            fix = "ports below 1024 need privileges; choose a port above 1023"
        else:
            fix = "check --host and --port"
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror}; {fix}") from None
    sock.listen()       # clients that connect before the server loop starts wait in the backlog
    return sock
