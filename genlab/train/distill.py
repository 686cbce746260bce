"""Distillation from a teacher into a student, three ways (`genlab distill …`):

* data (sequence-level KD, Kim & Rush 2016): the teacher, any genlab model (remote ones
  included), writes the replies; the student is fine-tuned on them with SFT;
* logits (token-level KD, Hinton et al. 2015): on the data's own replies, the student's
  next-token distribution is pulled toward the teacher's (trl's GKD with lmbda = 0, i.e.
  never on-policy; beta = 0 is the forward KL of classic KD);
* on-policy (GKD, Agarwal et al. 2024): the student samples its own replies and the
  teacher's token distributions on those prefixes are the target (lmbda = 1; beta = 0.5,
  the paper's generalised Jensen-Shannon divergence).

Logit-based methods need the student to share the teacher's tokenizer. By default the
student is the teacher with only its first ``student_layers`` layers kept (embeddings,
those layers and the final norm copied), as small students are built from a teacher's
config. The task metric is the mean per-token negative log-likelihood of held-out
reference replies (lower is better), for the student before and after and for the teacher.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from genlab.errors import ConfigError
from genlab.io import write_jsonl
from genlab.torch_setup import prepare_torch
from genlab.train.base import has_weights, resolve_model_dir
from genlab.train.data import conversation, held_out_split, load_rows
from genlab.train.trainer import (TEACHER_DATA_FILE, ReplyNLL, TrainOptions, TrainResult, callbacks, check_output,
                                  run, snapshot, trl_config)


def reply_nll(model, tokenizer, conversations: list[list[dict]]) -> float:
    """Mean negative log-likelihood per token of each conversation's last (assistant) message."""
    import torch

    total, count = 0.0, 0
    model.eval()
    for messages in conversations:
        prompt_ids = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, return_dict=True,
                                                   return_tensors="pt")["input_ids"]
        full_ids = tokenizer.apply_chat_template(messages, return_dict=True, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(full_ids).logits[0, :-1]                      # (T-1, vocab)
        targets = full_ids[0, 1:]                                         # (T-1,)
        losses = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
        reply = losses[prompt_ids.shape[1] - 1:]                          # only the reply's tokens
        total += float(reply.sum())
        count += int(reply.numel())
    return total / max(count, 1)


def build_student(teacher, layers: int):
    """The teacher truncated to its first ``layers`` layers (same tokenizer and width)."""
    import copy

    from transformers import AutoModelForCausalLM

    total = teacher.config.num_hidden_layers
    if not 1 <= layers <= total:
        raise ConfigError(f"--student-layers must be between 1 and {total} (the teacher's layers)")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = layers
    student = AutoModelForCausalLM.from_config(config, dtype=teacher.dtype)
    wanted = student.state_dict()
    student.load_state_dict({k: v for k, v in teacher.state_dict().items() if k in wanted}, strict=True)
    return student


def distill_logits(data: Path, options: TrainOptions, *, on_policy: bool, teacher: str | None = None,
                   student: str | None = None, student_layers: int = 4, beta: float | None = None,
                   max_new_tokens: int = 64, progress=None) -> TrainResult:
    """Token-level KD (``on_policy=False``) or on-policy GKD into a student that shares the tokenizer."""
    rows = load_rows(data, "sft", min_rows=3)
    check_output(options)
    prepare_torch()
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    # GKD lives in trl.experimental; genlab pins behaviour with its own tests, so the
    # import warning is noise for genlab's users.
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    teacher_dir = resolve_model_dir(teacher, progress)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    teacher_model = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32)
    if student:
        student_model = AutoModelForCausalLM.from_pretrained(resolve_model_dir(student), dtype=torch.float32)
        if student_model.config.vocab_size != teacher_model.config.vocab_size:
            raise ConfigError("logit distillation needs a student with the teacher's vocabulary; "
                              "use `genlab distill data` across tokenizers")
    else:
        student_model = build_student(teacher_model, student_layers)
    train, held = held_out_split([{"messages": conversation(r)} for r in rows], options.seed)
    held_conversations = [r["messages"] for r in held]
    before_nll = reply_nll(student_model, tokenizer, held_conversations)
    teacher_nll = reply_nll(teacher_model, tokenizer, held_conversations)
    before = snapshot(student_model)
    beta = (0.5 if on_policy else 0.0) if beta is None else beta
    losses: list[float] = []
    config = trl_config(GKDConfig, options, lmbda=1.0 if on_policy else 0.0, beta=beta, temperature=1.0,
                        max_new_tokens=max_new_tokens)
    trainer = GKDTrainer(model=student_model, teacher_model=teacher_model, args=config,
                         train_dataset=Dataset.from_list(train), processing_class=tokenizer,
                         callbacks=callbacks(options, losses))
    method = "on-policy" if on_policy else "logits"
    result = run(trainer, options, f"distill-{method}", losses, rows=len(train), before=before,
                 settings={"beta": beta, "student_layers": student_model.config.num_hidden_layers,
                           "teacher_layers": teacher_model.config.num_hidden_layers})
    nll = ReplyNLL(len(held_conversations), before_nll, reply_nll(trainer.model, tokenizer, held_conversations),
                   teacher_nll)
    return replace(result, reply_nll=nll).save()


def distill_data(prompts: Path, teacher_spec: str, options: TrainOptions, *, eval_data: Path | None = None,
                 max_tokens: int = 128, progress=None) -> TrainResult:
    """The teacher writes replies to the prompts; the student (``options.base``) is SFT'd on them."""
    from genlab.models import get_model
    from genlab.train.sft import tune_sft

    rows = load_rows(prompts, "prompts")
    held = [conversation(r) for r in load_rows(eval_data, "sft", min_rows=1)] if eval_data else []
    check_output(options)
    teacher = get_model(teacher_spec, source="distill")
    written = []
    for i, row in enumerate(rows, 1):
        prompt = [{"role": "user", "content": row["prompt"]}] if isinstance(row["prompt"], str) else row["prompt"]
        reply = teacher.chat(prompt, temperature=0, max_tokens=max_tokens, cache=True).text.strip()
        if reply:
            written.append({"prompt": prompt, "completion": [{"role": "assistant", "content": reply}]})
        if progress:
            progress(f"teacher replies: {i}/{len(rows)}")
    if len(written) < 2:
        raise ConfigError(f"the teacher {teacher_spec} wrote {len(written)} non-empty replies; need at least 2")
    data_file = options.output / TEACHER_DATA_FILE
    write_jsonl(written, data_file)
    before_nll = _nll_of(options.base, held) if held else None
    result = tune_sft(data_file, options, progress=progress)
    result = replace(result, method="distill-data",
                     settings={**result.settings, "teacher": teacher_spec, "teacher_replies": len(written)})
    if held:
        result = replace(result, reply_nll=ReplyNLL(
            len(held), before_nll, _nll_of(f"hf:{options.output}", held),
            _nll_of(teacher_spec, held) if has_weights(teacher_spec) else None))
    return result.save()


def _nll_of(spec: str | None, conversations: list[list[dict]]) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model_dir(spec)
    return reply_nll(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
                     AutoTokenizer.from_pretrained(folder), conversations)
