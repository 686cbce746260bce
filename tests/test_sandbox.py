"""The sandbox contains adversarial programs: the run goes on and nothing on the host is touched."""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from genlab.errors import ConfigError
from genlab.search.funsearch.evaluator import Evaluator
from genlab.search.funsearch import sandbox
from genlab.search.funsearch.sandbox import Limits, Sandbox, probe, require_isolation
from genlab.search.funsearch.spec import load_spec

LIMITS = Limits(timeout_s=2.0, memory_mb=1024, file_mb=4, processes=16)
ISOLATION = probe(Sandbox(LIMITS))
# Every attack test below runs as root and as a normal user alike; only a machine whose
# kernel refuses the namespaces (a container without user namespaces) skips them, and
# there genlab evolve itself refuses to run without --unsafe-sandbox. CI sets
# GENLAB_REQUIRE_SANDBOX, so that a sandbox broken on a machine that can isolate fails the run
# instead of showing as skips (a venv under /tmp once broke it that way, seen as 36 skips).
MISSING = "; ".join(ISOLATION.missing)
if not ISOLATION.isolated and os.environ.get("GENLAB_REQUIRE_SANDBOX"):
    pytest.fail(f"GENLAB_REQUIRE_SANDBOX is set, but the sandbox cannot isolate here: {MISSING}", pytrace=False)
pytestmark = pytest.mark.skipif(not ISOLATION.isolated, reason=f"this machine cannot isolate: {MISSING}")


def run(body: str, *, preload=(), inputs=None, limits=LIMITS):
    """Run `probe(x)` whose body is `body`; return the outcome of input 'a'."""
    program = "import numpy as np\n\ndef probe(x):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    result = Sandbox(limits).run(program, "probe", inputs or {"a": 1}, preload=list(preload))
    return result, result.outcomes["a"]


def processes() -> dict[int, str]:
    """Every process on the machine with its command line (whoever owns it)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                pass
    return found


TOKEN = "genlab-sandbox-leftover-marker"


def leftovers(before: dict[int, str]) -> list[str]:
    """Processes that appeared during the test and come from a sandbox: a forked supervisor or
    candidate keeps the forkserver's command line; an exec'd one carries TOKEN (see the tests
    that exec). The forkserver itself stays for the next run."""
    servers = {server.proc.pid for server in sandbox._forkservers.values()}
    return [f"{pid}: {cmd}" for pid, cmd in processes().items()
            if pid not in before and pid not in servers and ("sandbox_child.py" in cmd or TOKEN in cmd)]


@pytest.fixture(autouse=True)
def nothing_left_behind():
    before = processes()
    yield
    deadline = time.time() + 3
    while leftovers(before) and time.time() < deadline:
        time.sleep(0.1)
    assert leftovers(before) == []


def test_a_well_behaved_program_runs():
    result, outcome = run("return x * 2", inputs={"a": 21})
    assert result.status == "ok" and outcome.solution == 42 and result.isolated
    assert any("no network" in p for p in result.protections)
    assert any("private read-only root" in p for p in result.protections)
    assert any("PID namespace" in p for p in result.protections)


def test_it_sees_no_host_directories_and_no_processes():
    _, outcome = run("import os\nreturn sorted(os.listdir('/')), os.listdir('/proc'), os.listdir('/tmp'), "
                     "os.listdir('/home'), os.listdir('/root'), os.listdir('/run'), os.listdir('/etc')")
    top, proc, tmp, home, root, run_dir, etc = outcome.solution
    assert proc == [] and run_dir == [] and etc == []
    # /tmp, /home and /root hold nothing but the way to the Python installation (a venv may live there).
    assert set(tmp) <= _first_parts("/tmp")
    assert set(home) <= _first_parts("/home") and set(root) <= _first_parts("/root")
    assert set(top) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "dev", "proc", "run", "var",
                        "etc", "home", "root", "tmp"} | _first_parts("/")


def _first_parts(under: str) -> set:
    """The first path component below ``under`` of each directory the sandbox binds for Python."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    dirs |= {os.path.realpath(d) for d in dirs} | {p for p in sys.path if "-packages" in p}
    prefix = under.rstrip("/") + "/"
    return {d[len(prefix):].split("/")[0] for d in dirs if d.startswith(prefix)}


def test_an_environment_under_tmp_is_visible_read_only(tmp_path, monkeypatch):
    # A clone in /tmp puts its virtual environment under the /tmp that the sandbox replaces.
    packages = tmp_path / "site-packages"
    packages.mkdir()
    (packages / "tmp_installed.py").write_text("ANSWER = 42\n")
    monkeypatch.syspath_prepend(str(packages))
    result, outcome = run(f"import tmp_installed\nopen({str(packages / 'x.py')!r}, 'w')\n")
    assert result.missing == [] and "Read-only file system" in outcome.error
    assert run("import tmp_installed\nreturn tmp_installed.ANSWER")[1].solution == 42


def test_reading_the_projects_files(tmp_path):
    readme = os.path.abspath("README.md")
    assert os.path.exists(readme)
    _, outcome = run(f"return open({readme!r}).read()")
    assert outcome.solution is None and "FileNotFoundError" in outcome.error


def test_closing_its_pipe_and_sleeping_does_not_outlive_the_deadline():
    started = time.perf_counter()
    result, outcome = run("import os, time\nos.closerange(3, 4096)\ntime.sleep(1000)\nreturn 1")
    assert outcome.solution is None and result.status in ("crashed", "timeout")
    assert time.perf_counter() - started < LIMITS.timeout_s + 5


def test_a_daemon_that_execs_another_program_does_not_survive():
    result, outcome = run("import os, sys\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                          f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(1000)', "
                          f"'{TOKEN}'])\n    os._exit(0)\nimport time\ntime.sleep(0.3)\nreturn 1")
    assert outcome.solution == 1  # the fixture checks that the exec'd daemon is gone


def test_host_unix_sockets_are_out_of_reach():
    server = socket.socket(socket.AF_UNIX)
    name = f"\0genlab-test-{os.getpid()}"  # an abstract socket: no file to hide, only the namespace
    server.bind(name)
    server.listen()
    try:
        _, outcome = run(f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({name!r})\nreturn 'connected'",
                         preload=["socket"])
    finally:
        server.close()
    assert outcome.solution is None and "ConnectionRefusedError" in outcome.error


def test_it_has_no_privileges_left():
    _, outcome = run("import os\nos.chroot('/tmp')\nreturn 'chrooted'")
    assert outcome.solution is None and "PermissionError" in outcome.error


def test_fail_closed_where_it_cannot_isolate():
    unisolated = Sandbox(LIMITS, isolate=False)
    result = unisolated.run("def probe(x):\n    return x\n", "probe", {"a": 1})
    assert result.outcomes["a"].solution == 1 and not result.isolated
    assert result.missing == ["isolation turned off"]
    with pytest.raises(ConfigError, match="--unsafe-sandbox"):
        require_isolation(unisolated, unsafe=False)
    assert require_isolation(unisolated, unsafe=True) == ["isolation turned off"]
    with pytest.raises(ConfigError, match="--unsafe-sandbox"):
        Evaluator(load_spec("bin-packing"), sandbox=unisolated).evaluate("def priority(item, bins):\n    return 0.0\n")


def test_unisolated_mode_still_kills_what_the_candidate_left():
    # /bin/sh, not this interpreter: without isolation a candidate run by root is uid 65534,
    # which may not enter the folder the interpreter lives in (pyenv under /root).
    program = ("def probe(x):\n    import os, time\n    if os.fork() == 0:\n        os.setsid()\n"
               f"        os.execv('/bin/sh', ['/bin/sh', '-c', 'while :; do sleep 1; done', '{TOKEN}'])\n"
               "    time.sleep(0.3)\n    return 1\n")
    # Without a user namespace RLIMIT_NPROC counts every process of the user running the tests,
    # so it is raised to the hard limit here: the point is the daemon, not the fork limit.
    limits = Limits(timeout_s=2.0, memory_mb=1024, file_mb=4, processes=resource.getrlimit(resource.RLIMIT_NPROC)[1])
    result = Sandbox(limits, isolate=False).run(program, "probe", {"a": 1})
    assert result.outcomes["a"].solution == 1  # the fixture checks the daemon is gone (subreaper)


@pytest.mark.parametrize("body", [
    "while True:\n    pass",
    "import time\ntime.sleep(1000)",
    "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass",
])
def test_runaway_time_is_killed(body):
    started = time.perf_counter()
    result, outcome = run(body)
    assert outcome.kind == "timeout" and result.status == "timeout"
    assert time.perf_counter() - started < LIMITS.timeout_s + 5


def test_memory_bomb():
    _, outcome = run("b = bytearray(10 ** 10)\nreturn len(b)")
    assert outcome.kind == "memory"


def test_slow_memory_growth():
    _, outcome = run("chunks = []\nwhile True:\n    chunks.append(bytearray(50_000_000))")
    assert outcome.kind in ("memory", "timeout", "crashed")


def test_deep_recursion():
    _, outcome = run("import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return f(n + 1)\nreturn f(0)")
    assert outcome.kind in ("recursion", "crashed", "timeout", "memory")


def test_fork_bomb_is_contained():
    result, outcome = run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    assert outcome.solution is None


def test_escaping_the_process_group_does_not_survive():
    result, outcome = run("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\nreturn 1")
    # The fixture checks that the detached child is gone too.
    assert result.status in ("ok", "crashed", "timeout")


def test_writing_outside_its_directory_touches_nothing(tmp_path):
    target = tmp_path / "escaped.txt"
    _, outcome = run(f"open({str(target)!r}, 'w').write('owned')\nreturn 1")
    assert not target.exists()
    repo_file = os.path.abspath("ESCAPED_FROM_SANDBOX")
    run(f"open({repo_file!r}, 'w').write('owned')\nreturn 1")
    assert not os.path.exists(repo_file)


def test_shell_commands_touch_nothing(tmp_path):
    target = tmp_path / "by-shell"
    run(f"import os\nos.system('touch {target}')\nreturn 1")
    assert not target.exists()


def test_reading_host_files_it_should_not(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    secret.chmod(0o600)
    _, outcome = run(f"return open({str(secret)!r}).read()")
    assert outcome.solution != "hunter2" and outcome.kind == "exception"


def test_environment_secrets_are_not_inherited(monkeypatch):
    monkeypatch.setenv("GENLAB_TEST_SECRET", "hunter2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-hunter2")
    _, outcome = run("import os\nreturn dict(os.environ)")
    assert "hunter2" not in str(outcome.solution)
    assert set(outcome.solution) <= {"PATH", "HOME", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE"}


def test_no_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    _, outcome = run(f"import socket\ns = socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', {port}))\n"
                     "return 'connected'", preload=["socket"])
    thread.join()
    server.close()
    assert outcome.solution is None and "unreachable" in (outcome.error or "").lower() and not accepted


def test_os_exit_without_a_result():
    result, outcome = run("import os\nos._exit(0)")
    assert result.status == "crashed" and outcome.kind == "crashed"


def test_killing_its_parent_or_group():
    result, outcome = run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(0, signal.SIGKILL)\nreturn 1")
    # The supervisor is out of reach, so a result always comes back: the candidate either
    # killed only itself, or (as PID 1 of its namespace) was not allowed to.
    assert (result.status, outcome.solution) in (("crashed", None), ("ok", 1))


def test_huge_stdout_is_swallowed():
    result, outcome = run("import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 1_000_000)\nreturn 7")
    assert outcome.solution == 7


def test_huge_file_hits_the_file_limit():
    _, outcome = run("with open('big', 'wb') as f:\n    f.write(b'x' * 50_000_000)\nreturn 1")
    assert outcome.solution is None


def test_huge_result_is_refused():
    _, outcome = run("return list(range(30_000_000))")
    assert outcome.solution is None


def test_unsendable_result_is_an_error():
    _, outcome = run("return object()")
    assert outcome.kind == "exception" and "cannot send" in outcome.error


def test_thread_bomb():
    _, outcome = run("import threading, time\nts = [threading.Thread(target=time.sleep, args=(100,)) for _ in range(10000)]\n"
                     "for t in ts:\n    t.start()\nreturn 1")
    assert outcome.solution is None


def test_privilege_tricks_fail():
    _, outcome = run("import os\nos.setuid(0)\nreturn 'root'")
    assert outcome.solution is None


# -- through the evaluator: the score cannot be forged -----------------------------

@pytest.fixture(scope="module")
def bin_packing():
    spec = load_spec("bin-packing")
    first = dict(list(spec.inputs().items())[:2])
    return Evaluator(spec, Limits(timeout_s=5), inputs=first)


def test_patching_numpy_cannot_fake_a_packing(bin_packing):
    evaluation = bin_packing.evaluate(
        "def priority(item, bins):\n    import numpy as np\n"
        "    np.nonzero = lambda a: (np.arange(len(a)),)\n    return 0.0\n")
    assert not evaluation.valid and all(e.startswith("invalid:") for e in evaluation.errors.values())


def test_patching_the_scorer_in_the_sandbox_changes_nothing(bin_packing):
    evaluation = bin_packing.evaluate(
        "def priority(item, bins):\n    globals()['score'] = lambda instance, chosen: 0.0\n"
        "    globals()['solve'] = lambda instance: [0] * len(instance['items'])\n    return 0.0\n")
    # Patching solve() from inside priority() comes too late for this input, so it scores honestly.
    honest = bin_packing.evaluate("def priority(item, bins):\n    return 0.0\n")
    assert evaluation.scores == honest.scores


def test_rewriting_the_callers_frame_is_caught(bin_packing):
    evaluation = bin_packing.evaluate(
        "def priority(item, bins):\n    import sys\n    frame = sys._getframe(1)\n"
        "    frame.f_locals['chosen'][:] = 0\n    return 0.0\n")
    honest = bin_packing.evaluate("def priority(item, bins):\n    return 0.0\n")
    # Whatever it managed to change, a packing is only scored after it is checked.
    for name, value in evaluation.scores.items():
        assert value <= 0 and (value == honest.scores[name] or name in evaluation.errors)


def test_a_forged_cap_set_cannot_exhaust_the_scorer():
    import itertools
    import tracemalloc

    spec = load_spec("cap-set")
    every_vector = [list(v) for v in itertools.product((0, 1, 2), repeat=8)]
    tracemalloc.start()
    with pytest.raises(ValueError, match="on a line"):
        spec.score(8, every_vector)
    with pytest.raises(ValueError, match="at most"):
        spec.score(8, every_vector * 2)
    with pytest.raises(ValueError, match="8 coordinates"):
        spec.score(8, [[0, 1]] * 100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 1024 * 1024  # the pairwise arrays of 6561 vectors would take over 1 GB
    assert spec.score(8, [list(v) for v in itertools.product((0, 1), repeat=8)]) == 256


def test_a_forged_result_cannot_claim_a_score(bin_packing):
    evaluation = bin_packing.evaluate(
        "def priority(item, bins):\n    import json, os\n"
        "    for fd in range(3, 20):\n        try:\n            os.write(fd, b'{\"results\": {}}')\n        except OSError:\n            pass\n"
        "    return 0.0\n")
    assert all(v < 0 for v in evaluation.scores.values())


# -- the forkserver: one interpreter per genlab process, one supervisor per run -------------------

def test_runs_from_several_threads_each_get_their_own_result():
    # Large results from runs at once: each report reaches the run it belongs to, whole.
    results = {}

    def one(i):
        results[i] = run(f"return [{i}] * 200000")[1].solution

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {i: (len(r), set(r)) for i, r in results.items()} == {i: (200000, {i}) for i in range(6)}


def test_a_forkserver_that_dies_fails_its_run_and_the_next_run_starts_another():
    run("return 1")
    server = sandbox.forkserver(Sandbox(LIMITS).python)
    done = {}
    slow = threading.Thread(target=lambda: done.update(result=run("import time\ntime.sleep(1.5)\nreturn 1")[0]))
    slow.start()
    time.sleep(0.5)
    os.kill(server.proc.pid, signal.SIGKILL)
    slow.join(timeout=10)
    assert done["result"].status == "crashed" and "did not answer" in done["result"].detail
    result, outcome = run("return 2")
    assert outcome.solution == 2 and result.isolated
    assert sandbox.forkserver(Sandbox(LIMITS).python) is not server


def test_the_forkserver_exits_with_the_process_that_started_it():
    script = ("import time\nfrom genlab.search.funsearch.sandbox import Sandbox, forkserver\n"
              "Sandbox().run('def f(x):\\n    return x\\n', 'f', {'a': 1})\n"
              "print(forkserver(Sandbox().python).proc.pid, flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    server = int(parent.stdout.readline())
    parent.kill()   # SIGKILL: no clean-up code of the parent runs
    parent.wait()
    deadline = time.time() + 5
    while server in processes() and time.time() < deadline:
        time.sleep(0.05)
    assert server not in processes()


def test_a_supervisor_that_fails_is_reported_and_the_forkserver_goes_on():
    server = sandbox.forkserver(Sandbox(LIMITS).python)
    report = json.loads(server.run({"preload": [], "workdir": "/nonexistent-genlab-workdir"}, timeout=10))
    assert report["status"] == "crashed" and "FileNotFoundError" in report["detail"] and report["missing"]
    assert run("return 3")[1].solution == 3 and sandbox.forkserver(Sandbox(LIMITS).python) is server
