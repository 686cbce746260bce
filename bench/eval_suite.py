"""Wall time of the example suite at concurrency 1, 4 and 8, with a cold and a warm cache.

Each concurrency level gets its own empty genlab home (cold: every call reaches the
model), then runs again into a new results directory with that home (warm: every
call is a cache hit).

    .venv/bin/python bench/eval_suite.py
"""

from __future__ import annotations

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
    subprocess.run([sys.executable, "-m", "genlab.cli", "eval", "run", str(SUITE), "--out", out,
                    "--concurrency", str(concurrency)], check=True, capture_output=True,
                   env={**os.environ, "GENLAB_HOME": home})
    return time.perf_counter() - start


def main() -> None:
    results = {}
    for concurrency in (1, 4, 8):
        home = tempfile.mkdtemp()
        cold = run(home, f"{home}/cold", concurrency)
        warm = run(home, f"{home}/warm", concurrency)
        results[concurrency] = {"cold_s": cold, "warm_s": warm}
        print(f"concurrency {concurrency}: cold {cold:6.1f} s · warm {warm:5.1f} s ({cold / warm:.0f}x)")
    base = results[1]["cold_s"]
    for c, r in results.items():
        print(f"  cold speed-up at {c}: {base / r['cold_s']:.2f}x")
    write("eval_suite", {"suite": str(SUITE.name), "rows": 24, "results": results})


if __name__ == "__main__":
    main()
