"""Reward models (`genlab tune reward`): a Bradley-Terry scorer trained on preference pairs
with trl's RewardTrainer, the step of the InstructGPT recipe between SFT and RL.

The model is the chosen base with a one-output head; the loss is
-log σ(r(prompt, chosen) − r(prompt, rejected)). Pairwise accuracy is reported before
(the seeded random head) and after training, with its 95 % Wilson interval, on a file
of held-out pairs when one is given, else on a seeded 20 % of the pairs (at least one).
`RewardModel` loads a trained one to score replies, for best-of-N and GRPO.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from genlab.errors import ConfigError
from genlab.torch_setup import prepare_torch
from genlab.train.base import resolve_model_dir
from genlab.train.data import conversation, held_out_split, load_rows
from genlab.train.effect import Rate
from genlab.train.trainer import (PairAccuracy, TrainOptions, TrainResult, callbacks, check_output, lora_config, run,
                                  snapshot, trl_config)


class RewardModel:
    """Score (prompt, reply) pairs with a trained reward model folder."""

    def __init__(self, path: str | Path, model=None, tokenizer=None):
        if model is None and not (Path(path) / "config.json").is_file():
            # transformers would take any other string for a hub id and fail with a traceback.
            raise ConfigError(f"no reward model in {path}: give a folder that `genlab tune reward PAIRS -o DIR` wrote")
        prepare_torch()
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
        self.model = model or AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        self.model.eval()

    def score(self, prompt, completion) -> float:
        import torch

        text = self.tokenizer.apply_chat_template(conversation({"prompt": prompt, "completion": completion}), tokenize=False)
        inputs = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=1024)
        with torch.no_grad():
            return float(self.model(**inputs).logits[0, 0])

    def accuracy(self, pairs: list[dict]) -> Rate:
        """How many pairs have the chosen reply scored above the rejected one, of all pairs."""
        wins = sum(self.score(p["prompt"], p["chosen"]) > self.score(p["prompt"], p["rejected"]) for p in pairs)
        return Rate.of(wins, len(pairs))


def tune_reward(data: Path, options: TrainOptions, progress=None, held_out_pairs: Path | None = None) -> TrainResult:
    rows = load_rows(data, "preference", min_rows=4)
    held_file = load_rows(held_out_pairs, "preference", min_rows=1) if held_out_pairs is not None else None
    check_output(options)
    prepare_torch()
    base = resolve_model_dir(options.base, progress)
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    train, held = (rows, held_file) if held_file is not None else held_out_split(rows, options.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    # The score head starts random: seed it, so a run (and its "before" accuracy) repeats.
    torch.manual_seed(options.seed)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if progress:
        progress(f"scoring {len(held)} held-out pairs with the untrained head")
    before_accuracy = RewardModel(base, model, tokenizer).accuracy(held)
    before = snapshot(model)
    losses: list[float] = []
    trainer = RewardTrainer(model=model, args=trl_config(RewardConfig, options), train_dataset=Dataset.from_list(train),
                            processing_class=tokenizer, callbacks=callbacks(options, losses),
                            peft_config=lora_config("SEQ_CLS") if options.lora else None)
    result = run(trainer, options, "reward", losses, rows=len(train), before=before)
    if progress:
        progress(f"scoring {len(held)} held-out pairs with the trained model")
    after = RewardModel(options.output).accuracy(held)
    accuracy = PairAccuracy(str(held_out_pairs or ""), before_accuracy, after)
    return replace(result, pair_accuracy=accuracy).save()


def reward_verifier(path: str | Path):
    """A test-time-compute verifier ``(question, chain) -> reward`` from a reward model folder
    (it sees the question and the chain, never a gold answer)."""
    model = RewardModel(path)
    return lambda question, chain: model.score(question, chain.text)
