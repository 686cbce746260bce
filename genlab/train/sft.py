"""Supervised fine-tuning on demonstrations (`genlab tune sft`), with trl's SFTTrainer.

Rows are chat ``messages`` (the loss covers the whole conversation, as TRL does for this
format) or ``prompt``/``completion`` (the loss covers the completion only). The result
is a Hugging Face folder usable as ``--model hf:DIR``.
"""

from __future__ import annotations

from pathlib import Path

from genlab.train.data import load_rows
from genlab.train.trainer import TrainOptions, TrainResult, callbacks, load_policy, lora_config, run, trl_config


def tune_sft(data: Path, options: TrainOptions, progress=None) -> TrainResult:
    rows = load_rows(data, "sft")
    base, tokenizer, model, before = load_policy(options, progress)
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    losses: list[float] = []
    trainer = SFTTrainer(model=model, args=trl_config(SFTConfig, options), train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, callbacks=callbacks(options, losses),
                         peft_config=lora_config() if options.lora else None)
    return run(trainer, options, "sft", losses, rows=len(rows), before=before, base=base, progress=progress)
