"""Improving a model from what users said of it, and distilling one model into another.

    feedback.py    thumbs up/down, better answers and pairwise preferences → TRL's dataset formats
    base.py        a trainable transformers copy of the embedded model, built once from its GGUF
    data.py        reading and checking training JSONL in TRL's formats
    trainer.py     what every training command shares: options, time limit, resume, summary
    sft.py, reward.py, preference.py (DPO, KTO), grpo.py    one method per file, each on trl
    distill.py     data, logit and on-policy distillation into a student sharing the tokenizer
    embeddings.py  Gecko-style distillation of an LLM into the dense embedder
    compare.py     tuned vs base: pairwise autorater win rate and mean reward

The ``hf:DIR`` backend that serves a trained folder lives with the others, in genlab/models/hf.py.
"""
