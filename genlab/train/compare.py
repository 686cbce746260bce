"""Tuned against base (`genlab tune compare`): run an eval suite on both models, judge each
pair of outputs with a pairwise autorater in both orders (genlab eval's compare), and,
given a reward model, the mean reward of each model's outputs."""

from __future__ import annotations

from pathlib import Path

from genlab.errors import ConfigError
from genlab.evaluate.runner import RunOptions, SuiteRunner
from genlab.evaluate.suite import load_suite


def compare_models(base: str, tuned: str, suite_path: Path, out: Path, *, metric: str = "text_quality",
                   reward_model: Path | None = None, progress=None) -> dict:
    if base == tuned:
        raise ConfigError(f"BASE and TUNED are both {base}; give two different models, e.g. local hf:runs/dpo")
    suite = load_suite(suite_path, {"models": [base, tuned], "compare": {"baseline": base, "metric": metric}})
    scorer = None
    if reward_model is not None:     # loaded first: a wrong folder is refused before the suite runs
        from genlab.train.reward import RewardModel

        scorer = RewardModel(reward_model)
    runner = SuiteRunner(suite, RunOptions(out))
    summary = runner.run(progress)
    result = {"base": base, "tuned": tuned, "suite": str(suite_path), "pairwise": summary["pairwise"].get(tuned),
              "models": summary["models"]}
    if scorer is not None:
        rewards: dict[str, list[float]] = {base: [], tuned: []}
        for row in runner.store.done().values():
            if row.get("model") in rewards and row.get("output") is not None:
                rewards[row["model"]].append(scorer.score(row["prompt"], row["output"]))
        result["mean_reward"] = {m: sum(v) / len(v) if v else None for m, v in rewards.items()}
    return result
