"""The sandbox's two processes, started by genlab.search.funsearch.sandbox.

Run as ``python -I -B sandbox_child.py`` with a scrubbed environment; reads one job
(JSON) on stdin and writes one JSON line on stdout. Standard library only, and it
imports nothing from genlab, so the candidate's interpreter holds no genlab state.

    supervisor (this process, trusted)
      1. import what the program needs while every path is visible (a virtual
         environment may live under /tmp, which step 3 replaces)
      2. unshare: new mount, network, PID, IPC and UTS namespaces (root), or a user +
         network namespace (unprivileged), or nothing (reported)
      3. every mount read-only; private tmpfs on /tmp, /var/tmp, /dev/shm
      4. fork the candidate process (PID 1 of the new PID namespace) and wait for
         its result with a wall-clock deadline; SIGKILL on expiry, which ends every
         process in the namespace
    candidate (untrusted once step 5 is done)
      5. fresh /proc, rlimits (address space, CPU, file size, open files, processes,
         no core), stdout/stderr to /dev/null, drop to uid/gid 65534 with no new privileges
      6. run the program on each input and send solutions as JSON through a pipe
"""

import ctypes
import json
import os
import select
import signal
import sys
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 32, 4096, 16384
MS_PRIVATE = 1 << 18
PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG = 38, 1
NOBODY = 65534

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _mount_points() -> list:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            points.append(point)
    return points


def isolate(protections: list) -> bool:
    """Enter new namespaces and lock the filesystem; return True if a PID namespace was made."""
    if os.geteuid() == 0:
        try:
            _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
        except OSError as exc:
            protections.append(f"no namespaces ({exc})")
            return False
        protections += ["no network (empty network namespace)", "own PID namespace (all killed at the end)"]
        try:
            _mount("none", "/", None, MS_REC | MS_PRIVATE)
            # Longest paths first would not matter: each remount only touches its own mount.
            for point in _mount_points():
                try:
                    _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
                except OSError:
                    pass  # e.g. /proc entries that cannot be remounted; /proc is replaced below
            for tmp in ("/tmp", "/var/tmp", "/dev/shm"):
                if os.path.isdir(tmp):
                    _mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
            protections.append("read-only filesystem; private 64 MB /tmp")
        except OSError as exc:
            protections.append(f"filesystem not locked ({exc})")
        return True
    try:
        _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNET), "unshare")
        protections.append("no network (user + network namespace)")
    except OSError as exc:
        protections.append(f"network not isolated ({exc})")
    return False


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} back")


def candidate(job: dict, out_fd: int, pid_namespace: bool) -> None:
    """Set limits, drop privileges, run the program; never returns."""
    import resource
    import traceback

    status = 1
    try:
        os.setsid()
        if pid_namespace:
            try:
                _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV)
            except OSError:
                pass
        os.chdir("/tmp" if pid_namespace else job["workdir"])
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = sorted({0, 1, 2, out_fd})
        for low, high in zip(keep, keep[1:] + [4096]):
            os.closerange(low + 1, high)
        limits = job["limits"]
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (int(limits["timeout_s"]) + 1,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    except BaseException as exc:  # noqa: BLE001 - report any set-up failure to the supervisor
        _send(out_fd, {"setup_error": f"{type(exc).__name__}: {exc}"})
        os._exit(1)

    results = {}
    try:
        namespace = {"__name__": "candidate_program"}
        exec(compile(job["program"], "<program>", "exec"), namespace)
        entry = namespace[job["entry"]]
        for name, value in job["inputs"]:
            try:
                solution = entry(value)
                json.dumps(solution, default=_jsonable)  # fail here, per input, if not sendable
                results[name] = {"solution": solution}
            except MemoryError:
                results[name] = {"kind": "memory", "error": "MemoryError: out of memory"}
            except RecursionError:
                results[name] = {"kind": "recursion", "error": "RecursionError: maximum recursion depth exceeded"}
            except TypeError as exc:
                results[name] = {"kind": "exception", "error": f"TypeError: {exc}"}
            except BaseException as exc:  # noqa: BLE001 - SystemExit and friends count as errors too
                tb = traceback.extract_tb(exc.__traceback__)
                line = next((f" (line {f.lineno})" for f in reversed(tb) if f.filename == "<program>"), "")
                results[name] = {"kind": "exception", "error": f"{type(exc).__name__}: {exc}"[:500] + line}
        status = 0
        payload = {"results": results}
    except BaseException as exc:  # noqa: BLE001
        payload = {"results": results, "program_error": f"{type(exc).__name__}: {exc}"[:500]}
    _send(out_fd, payload)
    os._exit(status)


def _send(fd: int, payload: dict) -> None:
    data = json.dumps(payload, default=_jsonable).encode()
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.close(fd)


def preload(job: dict) -> None:
    """Import what the program needs while every path is still visible (the virtual
    environment may live under /tmp, which the sandbox replaces)."""
    import importlib

    sys.path[:0] = [p for p in job.get("sys_path", []) if p not in sys.path]
    for name in job["preload"]:
        try:
            importlib.import_module(name)
        except Exception:
            pass  # the program's own import will report it


def supervise(job: dict) -> dict:
    protections: list = []
    preload(job)
    pid_namespace = isolate(protections) if job["isolate"] else False
    if not job["isolate"]:
        protections.append("isolation disabled")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        candidate(job, write_fd, pid_namespace)
    os.close(write_fd)
    limits = job["limits"]
    deadline = time.monotonic() + limits["timeout_s"]
    chunks, size, status, detail = [], 0, "ok", ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            status, detail = "timeout", f"still running after {limits['timeout_s']} s"
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size > limits["output_mb"] * 1024 * 1024:
            status, detail = "too_large", f"result over {limits['output_mb']} MB"
            break
        chunks.append(chunk)
    if status != "ok":
        _kill(pid, pid_namespace)
    _, wait_status = os.waitpid(pid, 0)
    if not pid_namespace:
        _kill(pid, False)  # leftovers in the candidate's process group
    payload = None
    if status == "ok":
        try:
            payload = json.loads(b"".join(chunks)) if chunks else None
        except ValueError:
            payload = None
        if payload is None:
            status = "crashed"
            if os.WIFSIGNALED(wait_status):
                detail = f"killed by {signal.Signals(os.WTERMSIG(wait_status)).name}"
            else:
                detail = f"exited with code {os.WEXITSTATUS(wait_status)} and no result"
    return {"status": status, "detail": detail, "protections": protections, "payload": payload}


def _kill(pid: int, pid_namespace: bool) -> None:
    # In a PID namespace, killing its PID 1 kills every process in it.
    for target in ((pid,) if pid_namespace else (-pid, pid)):
        try:
            os.kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    job = json.loads(sys.stdin.buffer.read())
    report = supervise(job)
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
