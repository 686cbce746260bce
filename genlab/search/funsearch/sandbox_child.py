"""The sandbox's processes, started by genlab.search.funsearch.sandbox.

Run as ``python -I -B sandbox_child.py`` with a scrubbed environment, once per genlab
process: a forkserver (`serve`) that forks a supervisor for each job (JSON lines on stdin,
reports on stdout). Standard library only, and it imports nothing from genlab, so the
candidate's interpreter holds no genlab state.

    forkserver (this process, trusted; never runs candidate code)
      1. import what the program needs while every path is visible (each module once),
         then fork a supervisor for the job
    supervisor (a fork of it per job, trusted)
      2. unshare: new mount, network, PID, IPC and UTS namespaces; as a normal user
         also a user namespace (as bubblewrap does), mapping only the user's own id
      3. build a new root on a tmpfs: the system's /usr, /bin, /lib… and the Python
         installation bound read-only, a private 64 MB /tmp, /dev with null, zero and
         urandom only, nothing else (no home, no /run, no /proc); pivot into it
      4. fork the candidate process (PID 1 of the new PID namespace) and wait for
         its result with a wall-clock deadline; then SIGKILL the whole namespace,
         always, and reap with a bounded wait
    candidate (untrusted once step 5 is done)
      5. rlimits (address space, CPU, file size, open files, processes, no core),
         stdout/stderr to /dev/null, drop to uid/gid 65534 (as root) or every
         capability (in a user namespace), no new privileges, parent-death signal
      6. run the program on each input and send solutions as JSON through a pipe

Anything that fails in steps 2-3 is reported under ``missing``, never claimed: the
caller refuses to run candidates without full isolation unless the user accepts it.
"""

import ctypes
import json
import os
import platform
import select
import signal
import sys
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_PRIVATE = 1024, 2048, 1 << 21, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 24, 38, 36
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
NOBODY = 65534
#: What a candidate may see of the host, read-only (symbolic links are recreated as links).
SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
DEVICES = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _mount_points() -> list:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].encode().decode("unicode_escape") for line in f]


def _locked_flags(path: str) -> int:
    """The flags a read-only remount must keep: a user namespace may add restrictions
    to a mount it inherited, never lift them (the kernel answers EPERM)."""
    st = os.statvfs(path).f_flag
    pairs = [(os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
             (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (getattr(os, "ST_RELATIME", 4096), MS_RELATIME)]
    return sum(ms for st_flag, ms in pairs if st & st_flag)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def python_dirs(job: dict) -> list:
    """The Python installation the candidate needs: prefixes and site-packages, never
    other directories on the import path (a project directory may hold secrets)."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    dirs |= {p for p in job.get("sys_path", []) if "-packages" in p or p.endswith(".zip")}
    dirs |= {os.path.realpath(d) for d in dirs}
    dirs |= {os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(d for d in dirs if d and os.path.exists(d))


def isolate(job: dict, protections: list, missing: list) -> bool:
    """Enter new namespaces and pivot into a new, read-only root; return True if a PID
    namespace was made. Each protection that could not be had goes to ``missing``."""
    uid, gid = os.getuid(), os.getgid()
    user_ns = uid != 0
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    try:
        _check(libc.unshare(flags | (CLONE_NEWUSER if user_ns else 0)), "unshare")
    except OSError as exc:
        missing.append(f"namespaces ({exc}; as a normal user this needs unprivileged user namespaces)")
        return False
    if user_ns:
        # Only the user's own ids exist inside, both seen as 65534: files of other users
        # stay out of reach and setuid to anything else fails.
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{NOBODY} {uid} 1")
        _write("/proc/self/gid_map", f"{NOBODY} {gid} 1")
        protections.append("user namespace (only your own user id is mapped)")
    protections += ["no network (empty network namespace)", "own PID namespace (all killed at the end)"]
    try:
        new_root(job, protections)
    except OSError as exc:
        missing.append(f"private read-only filesystem ({exc})")
    return True


def new_root(job: dict, protections: list) -> None:
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    root = os.path.join(job["workdir"], "root")
    os.mkdir(root)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    # The private /tmp first: a virtual environment under the host's /tmp (a clone in /tmp)
    # is then bound inside it, read-only, instead of colliding with it.
    os.makedirs(root + "/tmp")
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    bound: list = []
    for src in SYSTEM_DIRS + python_dirs(job):
        if any(src == b or src.startswith(b.rstrip("/") + "/") for b in bound) or not os.path.lexists(src):
            continue  # already visible through a bind above it
        dst = root + src
        if os.path.islink(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.symlink(os.readlink(src), dst)
            continue
        os.makedirs(dst, exist_ok=True)
        _mount(src, dst, None, MS_BIND | MS_REC)
        bound.append(src)
    os.makedirs(root + "/dev")
    _mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for device in DEVICES:
        if os.path.exists(device):
            open(root + device, "w").close()
            _mount(device, root + device, None, MS_BIND)
    for empty in ("/proc", "/run", "/var/run", "/etc", "/home", "/root"):
        os.makedirs(root + empty, exist_ok=True)
    os.symlink("/tmp", root + "/var/tmp")
    os.symlink("/tmp", root + "/dev/shm")
    # Every mount in the new root read-only, except its /tmp.
    for point in _mount_points():
        if (point == root or point.startswith(root + "/")) and point != root + "/tmp":
            flags = MS_REMOUNT | MS_RDONLY | (MS_BIND if point != root else 0)
            _mount(None, point, None, flags | _locked_flags(point))
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"pivot_root: unknown system call number on {platform.machine()}")
    os.chdir(root)
    _check(libc.syscall(number, b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "umount old root")  # the host's root is gone from here on
    os.chdir("/")
    protections.append("private read-only root: system and Python directories only, 64 MB /tmp, "
                       "no home, /run or /proc")


def drop_capabilities() -> None:
    """Give up every capability the user namespace granted (mounting, overriding file modes…)."""
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break  # EINVAL: past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()                 # effective, permitted, inheritable x 2, all zero
    _check(libc.capset(header, data), "capset")


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
            os.setuid(NOBODY)  # clears every capability
        elif job["isolated"]:
            drop_capabilities()
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        # Changing credentials cleared the parent-death signal: set it again.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if not pid_namespace and os.getppid() != job["supervisor"]:
            os._exit(1)  # the supervisor died before the signal was set (PID 1 sees parent 0)
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
    """Import what the program needs while every path is still readable (once it is uid
    65534, the candidate cannot read an environment under a private home directory)."""
    import importlib

    sys.path[:0] = [p for p in job.get("sys_path", []) if p not in sys.path]
    for name in job["preload"]:
        try:
            importlib.import_module(name)
        except Exception:
            pass  # the program's own import will report it


def supervise(job: dict) -> dict:
    protections: list = []
    missing: list = []
    cgroup = join_cgroup(job["limits"], protections)
    if job["isolate"]:
        pid_namespace = isolate(job, protections, missing)
    else:
        pid_namespace = False
        missing.append("isolation turned off")
    job["isolated"] = pid_namespace and not missing
    if not pid_namespace:
        # Orphans of the candidate are re-parented here, so that they can be found and killed.
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    job["supervisor"] = os.getpid()
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
    # The result is in (or the time is up): whatever the candidate still runs, or left
    # behind, dies now. A closed pipe is no proof that it has finished.
    wait_status = _end(pid, pid_namespace, grace_s=0.2 if status == "ok" else 0.0)
    payload = None
    if status == "ok":
        try:
            payload = json.loads(b"".join(chunks)) if chunks else None
        except ValueError:
            payload = None
        if payload is None:
            status = "crashed"
            if wait_status is not None and os.WIFSIGNALED(wait_status):
                detail = f"killed by {signal.Signals(os.WTERMSIG(wait_status)).name}"
            elif wait_status is not None:
                detail = f"exited with code {os.WEXITSTATUS(wait_status)} and no result"
            else:
                detail = "no result"
    return {"status": status, "detail": detail, "protections": protections, "missing": missing,
            "cgroup": cgroup, "payload": payload}


def join_cgroup(limits: dict, protections: list):
    """Move this supervisor (and so the candidate) into a new cgroup v2 with a memory and a
    process limit for the whole sandbox; return its directory, or None where the machine
    does not delegate one (then the per-process rlimits are all there is)."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line.strip()[3:] for line in f if line.startswith("0::"))
        parent = "/sys/fs/cgroup" + path.rstrip("/")
        with open(parent + "/cgroup.subtree_control") as f:
            enabled = f.read().split()
        if not {"memory", "pids"} <= set(enabled):
            raise OSError(0, "memory and pids controllers not delegated here")
        group = f"{parent}/genlab-sandbox-{os.getpid()}"
        os.mkdir(group)
        _write(group + "/memory.max", str(limits["memory_mb"] * 1024 * 1024))
        _write(group + "/memory.swap.max", "0")
        _write(group + "/pids.max", str(limits["processes"]))
        _write(group + "/cgroup.procs", str(os.getpid()))
    except (OSError, StopIteration) as exc:
        errno = getattr(exc, "errno", None)
        reason = {2: "no cgroup v2 hierarchy here", 13: "the cgroup is not delegated to this user",
                  30: "the cgroup file system is read-only"}.get(errno, getattr(exc, "strerror", None)
                                                              or "no cgroup v2 for this process")
        protections.append(f"limits per process only (rlimits; {reason})")
        return None
    protections.append(f"cgroup limits for the whole sandbox: {limits['memory_mb']} MB, "
                       f"{limits['processes']} processes")
    return group


def _end(pid: int, pid_namespace: bool, grace_s: float):
    """Kill the candidate and everything it started; return its wait status (bounded wait)."""
    wait_status = None
    stop = time.monotonic() + grace_s
    while grace_s and time.monotonic() < stop:  # a well-behaved candidate exits by itself
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            wait_status = status
            break
        time.sleep(0.005)
    # In a PID namespace, killing its PID 1 kills every process in it, daemons included
    # (and once PID 1 has exited, the kernel has killed them already). A reaped pid is
    # never signalled: it may belong to another process by now.
    if wait_status is None:
        _signal(pid)
    if not pid_namespace:
        _signal(-pid)  # the candidate's process group
    stop = time.monotonic() + 5
    while time.monotonic() < stop:
        if not pid_namespace:
            for orphan in _children():
                _signal(orphan)  # forked and called setsid: re-parented to this subreaper
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # nothing left to reap
        if done == pid:
            wait_status = wait_status if wait_status is not None else status
        if not done:
            time.sleep(0.005)
    return wait_status


def _signal(target: int) -> None:
    try:
        os.kill(target, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children() -> list:
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == me:
                found.append(int(entry))
    return found


def serve() -> None:
    """The forkserver: fork one supervisor per job, so that a run does not pay for a new
    interpreter and its imports (about 0.1 s of the 0.18 s a bin-packing program takes).

    Reads one line ``{"id", "job"}`` per job on stdin. Each job's supervisor reports on a
    pipe of its own; each report goes out on stdout as one line ``{"id", "report"}`` ("" when
    the supervisor gave none). This process never runs candidate code and holds nothing
    secret (its environment is scrubbed); a supervisor forked from it isolates itself as
    `supervise` does. It exits when stdin closes (genlab
    has gone), and every supervisor dies with it (parent-death signal)."""
    jobs = {}       # pipe read end -> [job id, supervisor pid, report chunks]
    pending = b""
    while True:
        ready, _, _ = select.select([0, *jobs], [], [])
        for fd in ready:
            if fd != 0:
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    jobs[fd][2].append(chunk)
                    continue
                job_id, pid, chunks = jobs.pop(fd)
                os.close(fd)
                _signal(-pid)  # its process group, while the unreaped pid cannot be reused
                os.waitpid(pid, 0)
                _reply(job_id, b"".join(chunks).decode(errors="replace").strip())
                continue
            data = os.read(0, 1 << 16)
            if not data:
                return
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                message = json.loads(line)
                try:
                    preload(message["job"])  # here, so that every later supervisor has the modules
                    read_fd, pid = _fork_supervisor(message["job"])
                except Exception as exc:  # noqa: BLE001 - the job fails, the forkserver goes on
                    _reply(message["id"], json.dumps(_crashed(f"no supervisor ({type(exc).__name__}: {exc})")))
                    continue
                jobs[read_fd] = [message["id"], pid, []]


def _fork_supervisor(job: dict) -> tuple:
    """Fork a supervisor for ``job`` (its own session, its report on a new pipe); return
    (the pipe's read end, its pid)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return read_fd, pid
    try:
        os.close(read_fd)
        os.setsid()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):  # the forkserver's stdin and stdout carry every job's lines, not this one's
            os.dup2(null, fd)
        os.chdir(job["workdir"])
        report = supervise(job)
    except BaseException as exc:  # noqa: BLE001 - told to genlab, not raised in a forked copy
        report = _crashed(f"{type(exc).__name__}: {exc}")
    try:
        _send(write_fd, report)
    finally:
        os._exit(0)


def _crashed(detail: str) -> dict:
    """The report of a supervisor that failed: nothing ran under its protections."""
    return {"status": "crashed", "detail": f"sandbox supervisor failed: {detail}", "protections": [],
            "missing": ["no report from the supervisor"], "payload": None}


def _reply(job_id, report: str) -> None:
    sys.stdout.write(json.dumps({"id": job_id, "report": report}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    serve()
