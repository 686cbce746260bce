"""Improving a model from what users said of it, and distilling one model into another.

    feedback.py   thumbs up/down, better answers and pairwise preferences → TRL's dataset formats
    base.py       a trainable transformers copy of the embedded model, built once from its GGUF
    hf.py         the `hf:DIR` backend: any Hugging Face folder through genlab's model interface
    data.py       reading and checking training JSONL in TRL's formats
    trainer.py    what every training command shares: options, time limit, resume, summary
    sft.py, reward.py, preference.py (DPO, KTO)   one method per file, each on trl
"""
