"""Preference tuning without a separate reward model, with trl:

* DPO (Rafailov et al. 2023) on pairs ``prompt``/``chosen``/``rejected``;
* KTO (Ethayarajh et al. 2024) on unpaired thumbs up/down ``prompt``/``completion``/``label``,
  which is what users give most often.

Both keep a frozen copy of the starting model as the reference; ``beta`` (default 0.1,
both papers' default) sets how far the policy may move from it.

DPO's loss only asks that the chosen reply gain on the rejected one, and it can be met
by pushing both down: on genlab's format bench, DPO alone learnt the format and lost
the content (sums answered with any number). ``sft_weight`` adds the likelihood of the
chosen reply to the loss (RPO, Pang et al. 2024; trl's ``loss_type=["sigmoid", "sft"]``).
"""

from __future__ import annotations

from pathlib import Path

from genlab.train.data import load_rows
from genlab.train.trainer import TrainOptions, TrainResult, callbacks, load_policy, lora_config, run, trl_config


def tune_preference(method: str, data: Path, options: TrainOptions, *, beta: float = 0.1, sft_weight: float = 0.0,
                    progress=None) -> TrainResult:
    """Run DPO (``method="dpo"``, pairs; ``sft_weight`` > 0 adds the chosen replies' NLL) or
    KTO (``method="kto"``, thumbs up/down)."""
    rows = load_rows(data, "preference" if method == "dpo" else "unpaired")
    base, tokenizer, model, before = load_policy(options, progress)
    from datasets import Dataset

    if method == "dpo":
        from trl import DPOConfig as Config, DPOTrainer as Trainer
        fields = {"beta": beta}
        if sft_weight:
            fields |= {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, sft_weight]}
    else:
        from trl import KTOConfig as Config, KTOTrainer as Trainer
        fields = {"beta": beta}
    losses: list[float] = []
    trainer = Trainer(model=model, args=trl_config(Config, options, **fields), train_dataset=Dataset.from_list(rows),
                      processing_class=tokenizer, callbacks=callbacks(options, losses),
                      peft_config=lora_config() if options.lora else None)
    return run(trainer, options, method, losses, rows=len(rows), before=before, base=base,
               settings={"beta": beta, **({"sft_weight": sft_weight} if method == "dpo" else {})}, progress=progress)
