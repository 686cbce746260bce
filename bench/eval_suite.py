"""Wall time of the example suite at concurrency 1, 4 and 8, with a cold and a warm cache,
and whether the cold runs agree with each other row by row.

Each concurrency level gets its own empty genlab home (cold: every call reaches the
model), then runs again into a new results directory with that home (warm: every
call is a cache hit). The suite's rows fail or pass as the small model does: exit
code 100 (the gate) is a finished run, not an error.

    .venv/bin/python bench/eval_suite.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write

SUITE = Path(__file__).parent.parent / "examples" / "eval" / "summaries.yaml"


def run(home: str, out: str, concurrency: int) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "genlab.cli", "eval", "run", str(SUITE), "--out", out,
                           "--concurrency", str(concurrency)], capture_output=True, text=True,
                          env={**os.environ, "GENLAB_HOME": home})
    if done.returncode not in (0, 100):
        sys.exit(f"genlab eval run failed:\n{done.stderr}")
    return time.perf_counter() - start


def verdicts(out: str) -> list:
    """Each row's output and assertion verdicts (latency left out: it is a timing)."""
    rows = [json.loads(line) for line in Path(out, "results.jsonl").read_text().splitlines()]
    return [(r["output"], [(a["type"], a["passed"], a.get("raw_score")) for a in r["assertions"]
                           if a["type"] != "latency"]) for r in rows]


def main() -> None:
    results, first = {}, None
    for concurrency in (1, 4, 8):
        home = tempfile.mkdtemp()
        cold = run(home, f"{home}/cold", concurrency)
        warm = run(home, f"{home}/warm", concurrency)
        rows = verdicts(f"{home}/cold")
        first = first or rows
        same = sum(a == b for a, b in zip(rows, first))
        results[concurrency] = {"cold_s": cold, "warm_s": warm, "rows_identical_to_concurrency_1": same}
        print(f"concurrency {concurrency}: cold {cold:6.1f} s · warm {warm:5.1f} s ({cold / warm:.0f}x) · "
              f"{same}/{len(rows)} rows identical to concurrency 1")
    base = results[1]["cold_s"]
    for c, r in results.items():
        print(f"  cold speed-up at {c}: {base / r['cold_s']:.2f}x")
    write("eval_suite", {"suite": str(SUITE.name), "rows": 24, "results": results})


if __name__ == "__main__":
    main()
