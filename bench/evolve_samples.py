"""End-to-end program search speed on the embedded model: samples/s at 1, 2 and 4 workers.

Same spec (bin packing, constrained sampling as by default), same seed and sample count;
only --workers (model calls in flight) changes. On two cores the model's decoding and the
sandboxed evaluations share the CPU: more workers overlap them, and also put more decodes
on the same two cores.

    .venv/bin/python bench/evolve_samples.py [--samples 80] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import write

from genlab.search.funsearch.config import EvolveConfig
from genlab.search.funsearch.runner import describe, evolve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=80)
    parser.add_argument("--max-tokens", type=int, default=EvolveConfig.max_tokens)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    results = {}
    for workers in args.workers:
        run_dir = Path(tempfile.mkdtemp()) / "run"
        config = EvolveConfig(spec="bin-packing", samples=args.samples, seed=0, workers=workers,
                              max_tokens=args.max_tokens)
        _, progress = evolve(config, run_dir)
        info = describe(progress)
        results[workers] = info
        print(f"workers={workers}: {info['samples']} samples in {info['elapsed_s']:.1f} s → "
              f"{info['samples_per_s']:.3f} samples/s · valid {info['valid']} ({info['valid_pct']:.0f} %) · "
              f"{info['completion_tokens']} completion tokens · best {info['best']}")
    first = args.workers[0]
    for workers in args.workers[1:]:
        print(f"ratio {workers} workers / {first}: "
              f"{results[workers]['samples_per_s'] / results[first]['samples_per_s']:.2f}")
    write("evolve_samples", {"samples": args.samples, "max_tokens": args.max_tokens, "runs": results})


if __name__ == "__main__":
    main()
