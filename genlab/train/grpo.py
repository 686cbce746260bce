"""Policy optimisation against a reward model (`genlab tune grpo`), the RL step of the
InstructGPT recipe, with trl's GRPOTrainer (TRL no longer ships PPO).

For each prompt the policy samples ``num_generations`` replies; the reward model scores
them; each reply's advantage is its reward minus the group's mean (GRPO, Shao et al.
2024), so no value network is needed. Sampling runs in transformers on the CPU, which is
slow: keep replies short (``max_completion_length``) and steps few on a laptop.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from genlab.errors import ConfigError
from genlab.torch_setup import prepare_torch
from genlab.train.base import resolve_model_dir
from genlab.train.data import load_rows
from genlab.train.reward import RewardModel
from genlab.train.trainer import TrainOptions, callbacks, check_output, lora_config, run, snapshot, trl_config


def tune_grpo(prompts: Path, reward_model: Path, options: TrainOptions, *, num_generations: int = 4,
              max_completion_length: int = 48, temperature: float = 1.0, progress=None) -> dict:
    rows = load_rows(prompts, "prompts")
    if num_generations < 2:
        raise ConfigError("GRPO compares replies within a group: --generations must be at least 2")
    check_output(options)
    prepare_torch()
    base = resolve_model_dir(options.base, progress)
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    scorer = RewardModel(reward_model)

    def reward(prompts, completions, **_) -> list[float]:
        return [scorer.score(p, c) for p, c in zip(prompts, completions)]
    reward.__name__ = f"reward_model:{Path(reward_model).name}"

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    before = snapshot(model)
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
               extra_summary={"reward_model": str(reward_model), "rewards": rewards,
                              "num_generations": num_generations})
