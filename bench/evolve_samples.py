"""End-to-end program search speed on the embedded model: samples/s at 1 and 2 workers.

Same spec (bin packing), same seed and sample count; only --workers changes. On two
cores the model and the sandboxes share the CPU, so a second worker mostly overlaps
model calls with evaluation.

    .venv/bin/python bench/evolve_samples.py [--samples 24]
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
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=384)
    args = parser.parse_args()
    results = {}
    for workers in (1, 2):
        run_dir = Path(tempfile.mkdtemp()) / "run"
        config = EvolveConfig(spec="bin-packing", samples=args.samples, seed=0, workers=workers,
                              max_tokens=args.max_tokens)
        _, progress = evolve(config, run_dir)
        info = describe(progress)
        results[workers] = info
        print(f"workers={workers}: {info['samples']} samples in {info['elapsed_s']:.1f} s → "
              f"{info['samples_per_s']:.3f} samples/s · valid {info['valid']} ({info['valid_pct']:.0f} %) · "
              f"{info['completion_tokens']} completion tokens · best {info['best']}")
    print(f"ratio 2 workers / 1 worker: {results[2]['samples_per_s'] / results[1]['samples_per_s']:.2f}")
    write("evolve_samples", {"samples": args.samples, "max_tokens": args.max_tokens, "runs": results})


if __name__ == "__main__":
    main()
