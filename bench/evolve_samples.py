"""End-to-end program search speed on the embedded model: samples/s at 1, 2 and 4 workers,
and the ceiling that faster evaluation could reach.

Same spec (bin packing, constrained sampling as by default), same seed and sample count;
only --workers (model calls in flight) changes. On two cores the model's decoding and the
sandboxed evaluations share the CPU: more workers overlap them, and also put more decodes
on the same two cores.

Decode only: the first run's prompts, rebuilt from its store (and checked equal to what
it sent), drawn again through the same sampler with no evaluation running. Its samples/s
bound what any speed-up of evaluation (a score cache, a cheaper sandbox) could give.

Fresh interpreter: the first run again, same seed, with every sandboxed evaluation in an
interpreter of its own (started, used once and killed), as genlab ran them before the
forkserver; the ratio to the first run is what the forkserver gives end to end.

    .venv/bin/python bench/evolve_samples.py [--samples 80] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import fresh_interpreter_per_run, write

from genlab.search.funsearch.config import EvolveConfig
from genlab.search.funsearch.prompt import build_prompt
from genlab.search.funsearch.runner import Run, describe, evolve
from genlab.search.funsearch.runstore import RunStore


def decode_only(run_dir: Path) -> dict:
    """Draw a finished run's prompts again with nothing else running: samples/s of the model alone."""
    run = Run.resume(run_dir)
    by_id = {row.id: row for row in run.store.samples()}
    prompts = run.store.query("SELECT id, parent_ids, text FROM prompts ORDER BY id")
    samples = tokens = 0
    started = time.perf_counter()
    for row in prompts:
        parents = [run.program(by_id[i]) for i in json.loads(row["parent_ids"])]
        text, header = build_prompt(run.spec, parents)
        assert text == row["text"], f"prompt {row['id']} does not rebuild to what the run sent"
        response = run.model.execute(run.sampler.request(text, header, row["id"]))
        samples += len(response.texts)
        tokens += response.usage.completion_tokens
    elapsed = time.perf_counter() - started
    run.store.close()
    return {"prompts": len(prompts), "samples": samples, "completion_tokens": tokens, "elapsed_s": elapsed,
            "samples_per_s": samples / elapsed}


def tokens_per_s(run: dict) -> float:
    """Completion tokens a second: fairer than samples/s across runs whose samples differ in length."""
    return run["completion_tokens"] / run["elapsed_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=80)
    parser.add_argument("--max-tokens", type=int, default=EvolveConfig.max_tokens)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    results, run_dirs = {}, {}

    def config(workers: int) -> EvolveConfig:
        return EvolveConfig(spec="bin-packing", samples=args.samples, seed=0, workers=workers,
                            max_tokens=args.max_tokens)

    for workers in args.workers:
        run_dir = run_dirs[workers] = Path(tempfile.mkdtemp()) / "run"
        _, progress = evolve(config(workers), run_dir)
        info = describe(progress)
        results[workers] = info
        print(f"workers={workers}: {info['samples']} samples in {info['elapsed_s']:.1f} s → "
              f"{info['samples_per_s']:.3f} samples/s · valid {info['valid']} ({info['valid_pct']:.0f} %) · "
              f"{info['completion_tokens']} completion tokens ({tokens_per_s(info):.1f}/s) · "
              f"best {info['best']}")
    first = args.workers[0]
    for workers in args.workers[1:]:
        print(f"ratio {workers} workers / {first}: "
              f"{results[workers]['samples_per_s'] / results[first]['samples_per_s']:.2f}")
    with fresh_interpreter_per_run():
        fresh_run, fresh_progress = evolve(config(first), Path(tempfile.mkdtemp()) / "run")
        fresh = describe(fresh_progress)
    first_codes = [r.code for r in RunStore(run_dirs[first], create=False).samples()]
    same = [r.code for r in fresh_run.store.samples()] == first_codes
    print(f"a fresh interpreter per evaluation, {first} worker(s): {fresh['samples_per_s']:.3f} samples/s, "
          f"{tokens_per_s(fresh):.1f} completion tokens/s; forkserver / fresh: "
          f"{results[first]['samples_per_s'] / fresh['samples_per_s']:.2f} in samples/s, "
          f"{tokens_per_s(results[first]) / tokens_per_s(fresh):.2f} in tokens/s "
          f"({'the same samples' if same else 'other samples: evaluation timing changes what prompts show'})")
    alone = decode_only(run_dirs[first])
    print(f"decode only, the {first}-worker run's {alone['prompts']} prompts: {alone['samples']} samples in "
          f"{alone['elapsed_s']:.1f} s → {alone['samples_per_s']:.3f} samples/s, "
          f"{tokens_per_s(alone):.1f} completion tokens/s; end to end / decode only: "
          f"{results[first]['samples_per_s'] / alone['samples_per_s']:.2f} in samples/s, "
          f"{tokens_per_s(results[first]) / tokens_per_s(alone):.2f} in tokens/s")
    write("evolve_samples", {"samples": args.samples, "max_tokens": args.max_tokens, "runs": results,
                             "fresh_interpreter": {"of_workers": first, "same_samples": same, **fresh},
                             "decode_only": {"of_workers": first, **alone}})


if __name__ == "__main__":
    main()
