"""The Ray backend on a local Ray instance: sandboxed evaluations as Ray tasks."""

from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")

from genlab.search.funsearch.config import EvolveConfig  # noqa: E402
from genlab.search.funsearch.evaluator import Evaluator  # noqa: E402
from genlab.search.funsearch.ray_backend import RaySandbox, ensure_ray  # noqa: E402
from genlab.search.funsearch.runner import evolve  # noqa: E402
from genlab.search.funsearch.sandbox import Limits  # noqa: E402
from genlab.search.funsearch.spec import load_spec  # noqa: E402


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ensure_ray(2)
    yield ray
    ray.shutdown()


def test_ray_sandbox_matches_the_local_one(ray_instance):
    spec = load_spec("bin-packing")
    inputs = dict(list(spec.inputs().items())[:3])
    local = Evaluator(spec, Limits(timeout_s=10), inputs=inputs)
    remote = Evaluator(spec, Limits(timeout_s=10), inputs=inputs)
    remote.sandbox = RaySandbox(Limits(timeout_s=10))
    best_fit = "def priority(item, bins):\n    return -(bins - item)\n"
    assert remote.evaluate(best_fit).scores == local.evaluate(best_fit).scores
    runaway = remote.evaluate("def priority(item, bins):\n    while True:\n        pass\n")
    assert runaway.error_kind == "timeout"


def test_evolve_with_the_ray_backend(ray_instance, tmp_path: Path):
    config = EvolveConfig(spec="bin-packing", samples=4, seed=4, seed_model=True, max_tokens=160, backend="ray",
                          eval_workers=2)
    run, progress = evolve(config, tmp_path / "run")
    assert progress.samples == 4 and progress.valid >= 1
