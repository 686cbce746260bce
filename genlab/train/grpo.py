"""Policy optimisation against a reward (`genlab tune grpo`), the RL step of the InstructGPT
recipe, with trl's GRPOTrainer (TRL no longer ships PPO).

For each prompt the policy samples ``num_generations`` replies; the reward scores them;
each reply's advantage is its reward minus the group's mean (GRPO, Shao et al. 2024), so
no value network is needed. The reward is a trained reward model, or a program: a regex
the reply should match, or a Python checker that may read the prompt row's other fields
(e.g. the right answer), as in RL from verifiable rewards. Sampling runs in transformers
on the CPU, which is slow: keep replies short (``max_completion_length``) and steps few
on a laptop.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from genlab.errors import ConfigError
from genlab.train.data import load_rows
from genlab.train.reward import RewardModel
from genlab.train.trainer import TrainOptions, TrainResult, callbacks, load_policy, lora_config, run, trl_config


def _text(completion) -> str:
    """A reply as text: trl gives a chat reply as its list of messages."""
    return completion[-1]["content"] if isinstance(completion, list) else completion


def reward_function(spec: str) -> Callable:
    """The reward from ``--reward``: a reward-model folder, ``regex:PATTERN`` (1 when the reply
    matches, else 0), or ``python:FILE.py:FUNCTION``, called as ``FUNCTION(reply, row) -> float``
    with the prompt row's other fields in ``row``. Checked now, before any training."""
    if spec.startswith("regex:"):
        try:
            pattern = re.compile(spec.removeprefix("regex:"))
        except re.error as exc:
            raise ConfigError(f"--reward {spec!r}: not a valid regular expression ({exc})") from None

        def reward(prompts, completions, **_) -> list[float]:
            return [float(pattern.search(_text(c)) is not None) for c in completions]
    elif spec.startswith("python:"):
        from genlab.evaluate.metrics import load_user_function

        check = load_user_function(spec.removeprefix("python:"), Path.cwd(), what="--reward")

        def reward(prompts, completions, **columns) -> list[float]:
            # trl passes the dataset's other columns, one value per reply (and its own token ids).
            fields = {k: v for k, v in columns.items() if k != "completion_ids" and isinstance(v, list)
                      and len(v) == len(completions)}
            scores = []
            for i, completion in enumerate(completions):
                row = {k: v[i] for k, v in fields.items()}
                try:
                    value = check(_text(completion), row)
                except Exception as exc:   # the user's checker: say which reply and row it failed on
                    raise ConfigError(f"--reward {spec!r} raised {type(exc).__name__}: {exc}, on the reply "
                                      f"{_text(completion)[:80]!r} to the row {row}; it must return a number "
                                      "for any reply") from None
                if not isinstance(value, numbers.Real) or not math.isfinite(value):   # inf would make the loss NaN
                    raise ConfigError(f"--reward {spec!r} returned {value!r:.80} for the reply {_text(completion)[:80]!r} "
                                      f"to the row {row}; it must return a finite number for any reply")
                scores.append(float(value))
            return scores
    else:
        if not Path(spec).is_dir():
            raise ConfigError(f"--reward {spec!r}: give a folder from genlab tune reward, regex:PATTERN, "
                              "or python:FILE.py:FUNCTION")
        scorer = RewardModel(spec)

        def reward(prompts, completions, **_) -> list[float]:
            return [scorer.score(p, c) for p, c in zip(prompts, completions)]
    reward.__name__ = spec.split(":")[0] if ":" in spec else f"reward_model:{Path(spec).name}"
    return reward


def tune_grpo(prompts: Path, reward_spec: str, options: TrainOptions, *, num_generations: int = 4,
              max_completion_length: int = 48, temperature: float = 1.0, progress=None) -> TrainResult:
    rows = load_rows(prompts, "prompts", keep_fields=True)
    if num_generations < 2:
        raise ConfigError("GRPO compares replies within a group: --generations must be at least 2")
    reward = reward_function(str(reward_spec))
    base, tokenizer, model, before = load_policy(options, progress)
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    losses: list[float] = []
    rewards: list[float] = []
    # Each optimiser step sees batch_size prompts × num_generations replies.
    config = trl_config(GRPOConfig, replace(options, batch_size=options.batch_size * num_generations),
                        num_generations=num_generations, max_completion_length=max_completion_length,
                        temperature=temperature)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, callbacks=callbacks(options, losses, rewards),
                          peft_config=lora_config() if options.lora else None)
    return run(trainer, options, "grpo", losses, rows=len(rows), before=before, base=base, progress=progress,
               settings={"reward": str(reward_spec), "num_generations": num_generations}, rewards=rewards)
