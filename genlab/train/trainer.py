"""What every `genlab tune` command shares: options, TRL's config on the CPU, a time limit,
resume after interruption, LoRA, and the result written beside the model.

Each method file (sft.py, reward.py, preference.py) builds its TRL trainer and hands it
to `run`, which trains, saves a plain Hugging Face folder (LoRA adapters merged in, so
``--model hf:DIR`` works everywhere), measures how far the weights moved and returns a
`TrainResult`, which the method completes with what it measures itself.
"""

from __future__ import annotations

import errno
import json
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from genlab.errors import ConfigError, GenlabError
from genlab.io import HOLD_FILE, hold_folder, require_empty_folder

if TYPE_CHECKING:
    from genlab.train.effect import HeldOutEffect, Rate

SUMMARY_FILE = "genlab-train.json"
TEACHER_DATA_FILE = "teacher-data.jsonl"    # written by `distill data` before it trains
#: How a full disk shows in what training writes: safetensors says it in an error of its own, torch
#: often not at all ("iostream error"), so a write that fails with less than LOW_SPACE left counts too.
DISK_FULL = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")
LOW_SPACE = 64 << 20


@dataclass(frozen=True)
class TrainOptions:
    """Options shared by every training command (CLI flags derive from these)."""

    output: Path                      # the Hugging Face folder to write (checkpoints inside)
    base: str | None = None           # starting model: None/local = the embedded model, hf:DIR or a folder
    max_steps: int = 100              # optimiser steps; the run also stops at max_minutes
    max_minutes: float | None = None
    learning_rate: float = 2e-5       # full fine-tuning of a 135M model; LoRA wants ~1e-4
    batch_size: int = 4
    max_length: int = 256             # tokens per example (prompt + answer)
    lora: bool = False                # train LoRA adapters (r=16 on attention) and merge them at the end
    save_steps: int = 25              # checkpoint every this many steps (and at the end); 0: none
    resume: bool = False              # continue from the newest checkpoint in output
    seed: int = 0
    held_out: Path | None = None      # a genlab eval suite run on the starting and the trained model

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ConfigError(f"--lr must be more than 0 (got {self.learning_rate:g}); 2e-5 suits full "
                              "fine-tuning, 1e-4 LoRA")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"--max-minutes must be more than 0 (got {self.max_minutes:g})")


@dataclass(frozen=True)
class WeightChange:
    """How far training moved the weights."""

    relative_l2_change: float         # ||after - before|| / ||before||, over every tensor
    tensors_changed: int
    tensors: int


@dataclass(frozen=True)
class PairAccuracy:
    """A reward model's held-out pairwise accuracy (chosen scored above rejected), before and after."""

    file: str                         # the --held-out file, or "" for the split of the training data
    before: Rate                      # pairs ranked right by the untrained head, of all held-out pairs
    after: Rate

    @property
    def pairs(self) -> int:
        return self.before.n


@dataclass(frozen=True)
class ReplyNLL:
    """Distillation: held-out reply NLL per token (lower is better) of the student, and of the teacher."""

    rows: int
    student_before: float
    student_after: float
    teacher: float | None             # None where the teacher's weights cannot be had (an API model)


@dataclass(frozen=True)
class TrainResult:
    """What a training run did and measured; saved beside the model as genlab-train.json."""

    method: str
    rows: int                         # training rows
    steps: int
    seconds: float
    losses: list[float]               # every logged loss, in order
    options: dict                     # the TrainOptions, as saved
    weights: WeightChange | None = None
    settings: dict = field(default_factory=dict)   # the method's own settings, for the record (beta, …)
    rewards: list[float] | None = None             # GRPO: mean reward per logged step
    pair_accuracy: PairAccuracy | None = None      # reward models
    reply_nll: ReplyNLL | None = None              # distillation, where held-out replies were given
    held_out_effect: HeldOutEffect | None = None   # the --held-out suite, before and after (effect.measure)

    @property
    def loss_first(self) -> float | None:
        """Mean of the first quarter of the logged losses (None when nothing was logged)."""
        head = self.losses[:max(1, len(self.losses) // 4)]
        return sum(head) / len(head) if head else None

    @property
    def loss_last(self) -> float | None:
        """Mean of the last quarter of the logged losses."""
        tail = self.losses[-max(1, len(self.losses) // 4):]
        return sum(tail) / len(tail) if tail else None

    @property
    def output(self) -> str:
        return self.options["output"]

    def save(self) -> "TrainResult":
        """Write genlab-train.json into the output folder (again after each measurement: nothing is lost)."""
        record = {**asdict(self), "loss_first": self.loss_first, "loss_last": self.loss_last}
        (Path(self.output) / SUMMARY_FILE).write_text(json.dumps(record, indent=2))
        return self


def trl_config(config_class, options: TrainOptions, **method_fields):
    """A TRL config for the CPU: no bf16, no reporting, checkpoints in ``options.output``.

    Only the newest checkpoint is kept: with Adam's two moments it is three times the
    model (about 1.6 GB for the embedded model, some 13 s to write on two cores), and the
    newest is all ``--resume`` needs. ``save_steps=0`` writes none, for runs that will not
    be resumed; a time limit still checkpoints where it stops.
    """
    fields = dict(
        output_dir=str(options.output), use_cpu=True, bf16=False, fp16=False, report_to="none",
        max_steps=options.max_steps, learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size, gradient_accumulation_steps=1,
        logging_steps=1, save_strategy="steps" if options.save_steps else "no",
        save_steps=options.save_steps or 1, save_total_limit=1, seed=options.seed,
        dataloader_num_workers=0, dataset_num_proc=None, max_length=options.max_length,
        lr_scheduler_type="constant", warmup_steps=0)
    known = config_class.__dataclass_fields__
    # Not every trainer has every field (GRPO has no max_length, for one).
    return config_class(**{k: v for k, v in fields.items() if k in known}, **method_fields)


def lora_config(task_type: str = "CAUSAL_LM"):
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type=task_type,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      modules_to_save=["score"] if task_type == "SEQ_CLS" else None)


def checkpoints(output: Path) -> list[Path]:
    return sorted(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))


def resumable_checkpoint(output: Path) -> Path | None:
    """The newest checkpoint written to the end: the trainer writes its state file last, so a
    run killed while it wrote the newest (some 13 s of writing) resumes from the one before,
    not from the half-written one (transformers' own choice, which failed)."""
    complete = [c for c in checkpoints(output) if (c / "trainer_state.json").is_file()]
    return complete[-1] if complete else None


def check_output(options: TrainOptions) -> None:
    """Refuse to overwrite a run unless asked to resume it: nothing trained is lost. The
    starting model is checked and a held-out suite read now, so that a mistake in either is
    found before the training (and before a teacher writes replies for it)."""
    from genlab.train.base import trainable_dir

    if options.output.exists() and not options.output.is_dir():
        raise ConfigError(f"--output {options.output} is a file; give a folder for the trained model")
    trainable_dir(options.base)
    if options.held_out is not None:
        from genlab.evaluate.suite import load_suite

        if options.held_out.suffix.lower() in (".jsonl", ".json", ".csv"):
            raise ConfigError(f"--held-out {options.held_out}: give a genlab eval suite (YAML) whose tests are the "
                              "held-out rows, e.g. examples/tune/format.yaml with `tests: rows.jsonl`")
        load_suite(options.held_out)
    if options.resume and not resumable_checkpoint(options.output):
        if not (found := checkpoints(options.output)):
            raise ConfigError(f"--resume: no checkpoint in {options.output} to resume from; drop --resume to start")
        raise ConfigError(f"--resume: the only checkpoint in {options.output}, {found[-1].name}, "
                          "was cut short while it was written; remove it and drop --resume to start again")
    if not options.resume:
        _refuse_a_finished_run(options)
        require_empty_folder(options.output, "--output", "the trained model", own=(TEACHER_DATA_FILE, HOLD_FILE))


def _refuse_a_finished_run(options: TrainOptions) -> None:
    if checkpoints(options.output) or (options.output / SUMMARY_FILE).exists():
        raise ConfigError(f"{options.output} already holds a training run; pass --resume to continue it "
                          "or choose another --output")


@contextmanager
def disk_space_for(output: Path, resumable: Callable[[], bool]) -> Iterator[None]:
    """Name the folder and the fix when a model or a checkpoint cannot be written for lack of
    space (a traceback from safetensors or torch before); ``resumable`` says whether what is
    there lets --resume go on."""
    try:
        yield
    except Exception as exc:
        said = any(getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(s in str(e) for s in DISK_FULL)
                   for e in (exc, exc.__context__, exc.__cause__) if e is not None)
        if not said and shutil.disk_usage(output).free >= LOW_SPACE:
            raise
        fix = ("then run the same command with --resume" if resumable() else
               f"remove what was written to {output} and run the same command again")
        raise GenlabError(f"{output}: the disk is full ({exc}); free some space, {fix}") from exc


def callbacks(options: TrainOptions, losses: list[float], rewards: list[float] | None = None):
    from transformers import TrainerCallback

    class TimeLimitAndLosses(TrainerCallback):
        """Stop (and checkpoint) at max_minutes; keep every logged loss (and reward, for RL);
        report progress on stderr about ten times a run, in place of the trainers' per-step dicts."""

        def __init__(self):
            self.started = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
            if logs and rewards is not None and "reward" in logs:
                rewards.append(float(logs["reward"]))
            every = max(1, state.max_steps // 10) if state.max_steps > 0 else 10
            if logs and "loss" in logs and (state.global_step % every == 0 or state.global_step == state.max_steps):
                reward = f", reward {rewards[-1]:.3f}" if rewards else ""
                print(f"step {state.global_step}/{state.max_steps}: loss {losses[-1]:.4f}{reward} "
                      f"({time.monotonic() - self.started:.0f} s)", file=sys.stderr, flush=True)

        def on_step_end(self, args, state, control, **kwargs):
            if options.max_minutes is not None and time.monotonic() - self.started > 60 * options.max_minutes:
                control.should_training_stop = True
                control.should_save = True
            return control

    return [TimeLimitAndLosses()]


def quiet(trainer) -> None:
    """Drop the trainer's own progress bar and per-step log printing (TimeLimitAndLosses reports)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)


def weight_change(before: dict, model) -> WeightChange:
    """How far training moved the weights: relative L2 change overall, and tensors touched."""
    import torch

    after = {k: v.detach() for k, v in model.state_dict().items()}
    changed, total_delta, total_norm = 0, 0.0, 0.0
    for name, old in before.items():
        new = after.get(name)
        if new is None or new.shape != old.shape:
            continue
        delta = float(torch.linalg.vector_norm((new - old).float()))
        total_delta += delta ** 2
        total_norm += float(torch.linalg.vector_norm(old.float())) ** 2
        changed += delta > 0
    return WeightChange((total_delta ** 0.5) / max(total_norm ** 0.5, 1e-12), int(changed), len(before))


def run(trainer, options: TrainOptions, method: str, losses: list[float], *, rows: int,
        before: dict | None = None, base: Path | None = None, settings: dict | None = None,
        rewards: list[float] | None = None, progress=None) -> TrainResult:
    """Train (resuming when asked), save a plain HF folder, run the held-out suite on ``base``
    (the starting model's folder) and the trained model, save and return the result. The
    output folder is held meanwhile: a second run into it is refused, not mixed with this one
    (two wrote one folder, the record of one beside the weights of the other)."""
    options.output.mkdir(parents=True, exist_ok=True)
    with hold_folder(options.output, f"trains a model ({method})"), \
            disk_space_for(options.output, lambda: resumable_checkpoint(options.output) is not None):
        if not options.resume:
            _refuse_a_finished_run(options)   # again, now that it is held: one may have ended here since
        quiet(trainer)
        started = time.monotonic()
        trainer.train(resume_from_checkpoint=str(resumable_checkpoint(options.output)) if options.resume else None)
        seconds = time.monotonic() - started
        model = trainer.model
        if options.lora:
            model = model.merge_and_unload()
        # Trainers turn the KV cache off for training; a saved model generates with it.
        model.config.use_cache = True
        model.save_pretrained(options.output)
        trainer.processing_class.save_pretrained(options.output)
        result = TrainResult(
            method=method, rows=rows, steps=trainer.state.global_step, seconds=round(seconds, 2), losses=losses,
            options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
            weights=weight_change(before, model) if before is not None else None,
            settings=settings or {}, rewards=rewards).save()   # before the held-out run: nothing trained is lost
        if options.held_out is not None and base is not None:
            from genlab.train.effect import measure

            if progress:
                progress(f"running {options.held_out} on the starting and the trained model")
            result = replace(result, held_out_effect=measure(options.held_out, base, options.output)).save()
        return result


def load_policy(options: TrainOptions, progress=None):
    """After `check_output`, the starting causal LM in float32 on the CPU: (its folder, its
    tokenizer, the model, a `snapshot` of its weights)."""
    check_output(options)
    from genlab.torch_setup import prepare_torch
    from genlab.train.base import resolve_model_dir

    prepare_torch()
    base = resolve_model_dir(options.base, progress)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return base, AutoTokenizer.from_pretrained(base), model, snapshot(model)


def snapshot(model) -> dict:
    """A detached copy of the weights, to measure the change after training."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
