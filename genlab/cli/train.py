"""`genlab feedback …` and `genlab tune …`: learning from what users said."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from genlab.cli.common import ModelOpt, app, err, note_busy_cores, on_ctrl_c, out, output_file, progress_bars
from genlab.io import writable_folder

if TYPE_CHECKING:
    from genlab.train.trainer import TrainResult

feedback_app = typer.Typer(no_args_is_help=True, help="Ratings and preferences captured in chat and serve.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def export(output: Path = typer.Argument(..., help="The JSONL file to write."),
           fmt: str = typer.Option("sft", "--format", "-f", help="sft (messages), preference (prompt/chosen/"
                                   "rejected) or unpaired (prompt/completion/label)."),
           min_rows: int = typer.Option(1, "--min-rows", help="Refuse to write fewer rows than this.")) -> None:
    """Write captured feedback in one of TRL's dataset formats.

    Example: genlab feedback export prefs.jsonl --format preference
    """
    from genlab.errors import ConfigError
    from genlab.store import Store
    from genlab.io import write_jsonl
    from genlab.train.feedback import export_rows

    output_file(output, "OUTPUT")
    rows, unused = export_rows(Store(), fmt)
    if len(rows) < min_rows:
        raise ConfigError(f"only {len(rows)} {fmt} rows in the captured feedback (need {min_rows}); rate more "
                          "replies with /up, /down in genlab chat or POST /v1/feedback")
    write_jsonl(rows, output)
    out.print(f"wrote {len(rows)} {fmt} rows to {output}")
    if unused:
        err.print(f"{unused} feedback rows do not fit the {fmt} format and were left out", style="dim")


@feedback_app.command("stats")
def stats() -> None:
    """Count captured ratings and preferences."""
    from genlab.store import Store
    from genlab.train.feedback import current_rows

    ratings, pairs, replaced = current_rows(Store())
    up = sum(r["rating"] == 1 for r in ratings)
    down = sum(r["rating"] == -1 for r in ratings)
    better = sum(bool(r["better"]) for r in ratings)
    out.print(f"{len(ratings) + len(pairs)} feedback rows: {up} thumbs up, {down} thumbs down ({better} with a "
              f"better answer), {len(pairs)} pairwise preferences")
    if replaced:
        err.print(f"(not counted: {replaced} earlier rating{'s' if replaced > 1 else ''} of a reply rated again; "
                  "the latest counts)", style="dim")


tune_app = typer.Typer(no_args_is_help=True, help="Fine-tune a model on the CPU with trl: SFT, reward model, DPO, KTO, GRPO.")
app.add_typer(tune_app, name="tune")

OutputOpt = typer.Option(..., "--output", "-o", help="Folder to write (a Hugging Face model; use it as --model hf:DIR).")

#: TrainOptions' fields as flags: (flag, type, help, minimum). Defaults are TrainOptions' own.
TRAIN_FLAGS = {
    "max_steps": ("--max-steps", int, "Optimiser steps.", 1),
    "max_minutes": ("--max-minutes", Optional[float], "Stop (with a checkpoint) after this long.", None),
    "learning_rate": ("--lr", Optional[float], "Learning rate (default 2e-5, or 1e-4 with --lora).", None),
    "batch_size": ("--batch-size", int, "Examples per step.", 1),
    "max_length": ("--max-length", int, "Tokens per example.", 16),
    "lora": ("--lora", bool, "Train LoRA adapters (merged into the saved model).", None),
    "save_steps": ("--save-steps", int, "Checkpoint every this many steps and at the end (0: none; a "
                   "checkpoint of the embedded model is about 1.6 GB).", 0),
    "resume": ("--resume", bool, "Continue from the newest checkpoint in --output.", None),
    "held_out": ("--held-out", Optional[Path], "A genlab eval suite of held-out rows, run on the starting and "
                 "the trained model: what the training changed, per assertion.", None),
}


def train_command(typer_app: typer.Typer, name: str | None = None, *, base: str | None = "--base",
                  base_help: str = "Starting model: local (the embedded model) or hf:DIR.",
                  exclude: tuple[str, ...] = (), lr: float | None = None, **overrides):
    """Register ``func`` as a command that also takes --output, the starting model (``base``
    names its flag; None: none) and every TrainOptions flag; ``func`` gets ``options``.
    ``overrides`` replace a flag's typer.Option; ``lr`` is the default learning rate."""
    from genlab.train.trainer import TrainOptions

    defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}

    def register(func):
        own = [p for p in inspect.signature(func).parameters.values() if p.name != "options"]
        added = [inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, default=OutputOpt, annotation=Path)]
        if base:
            added.append(inspect.Parameter("base", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                                           default=typer.Option("local", base, help=base_help)))
        for field, (flag, kind, help_, minimum) in TRAIN_FLAGS.items():
            if field in exclude:
                continue
            default = None if field == "learning_rate" else defaults[field]
            option = overrides.get(field) or typer.Option(default, flag, help=help_,
                                                          **({"min": minimum} if minimum is not None else {}))
            added.append(inspect.Parameter(field, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))

        @functools.wraps(func)
        def command(**values):
            shared = {k: values.pop(k) for k in [*TRAIN_FLAGS, "output", "base"] if k in values}
            writable_folder(shared["output"], "--output")   # before the training, not after it
            note_busy_cores()
            chosen_lr = shared.get("learning_rate")
            shared["learning_rate"] = chosen_lr if chosen_lr is not None else (
                lr if lr is not None else 1e-4 if shared.get("lora") else defaults["learning_rate"])
            with on_ctrl_c(lambda: _how_to_go_on(shared["output"])):
                return func(**values, options=TrainOptions(**shared))

        command.__signature__ = inspect.Signature([*own, *added])
        return typer_app.command(name)(command)
    return register


def _how_to_go_on(output: Path) -> str:
    from genlab.train.trainer import resumable_checkpoint

    kept = resumable_checkpoint(output) if output.is_dir() else None
    return (f"interrupted; to go on from {kept.name}, run the same command with --resume" if kept else
            "interrupted before the first checkpoint (one every --save-steps steps): nothing to resume")


def _report(result: TrainResult) -> None:
    loss = f"; loss {result.loss_first:.4f} → {result.loss_last:.4f}" if result.losses else ""
    moved = f"; weights moved {100 * result.weights.relative_l2_change:.3f} % (L2)" if result.weights else ""
    out.print(f"{result.method}: {result.steps} steps on {result.rows} rows in {result.seconds:.0f} s{loss}{moved}")
    if result.pair_accuracy:
        pairs = result.pair_accuracy
        out.print(f"held-out pairwise accuracy ({pairs.pairs} pairs, 95 % CI): {pairs.before} → {pairs.after}")
    if result.held_out_effect:
        effect = result.held_out_effect
        out.print(f"held-out ({effect.suite}, {effect.rows} rows), starting model → trained, 95 % CI:")
        for line in effect.lines():
            out.print(line)
    if result.rewards:
        out.print(f"mean reward per step: {result.rewards[0]:+.3f} (first) → {result.rewards[-1]:+.3f} (last)")
    if result.reply_nll:
        nll = result.reply_nll
        teacher = f"; teacher {nll.teacher:.3f}" if nll.teacher is not None else ""
        out.print(f"held-out reply NLL per token ({nll.rows} rows, lower is better): student "
                  f"{nll.student_before:.3f} → {nll.student_after:.3f}{teacher}")
    out.print(f"wrote {result.output} (use it as --model hf:{result.output})")


def _say(message: str) -> None:
    err.print(message, style="dim")


@train_command(tune_app)
def sft(data: Path = typer.Argument(..., help="JSONL: {messages} or {prompt, completion}."), *, options) -> None:
    """Supervised fine-tuning on demonstrations.  Example: genlab tune sft demos.jsonl -o runs/sft --max-steps 50"""
    from genlab.train.sft import tune_sft

    _report(tune_sft(data, options, progress=_say))


@train_command(tune_app, exclude=("held_out",))
def reward(data: Path = typer.Argument(..., help="JSONL: {prompt, chosen, rejected}."),
           held_out_pairs: Optional[Path] = typer.Option(None, "--held-out", help="JSONL pairs never trained on, "
                                                         "for the accuracy before and after (default: 20 %% of DATA)."),
           *, options) -> None:
    """Train a Bradley-Terry reward model on pairs; reports held-out pairwise accuracy."""
    from genlab.train.reward import tune_reward

    _report(tune_reward(data, options, progress=_say, held_out_pairs=held_out_pairs))


BetaOpt = typer.Option(0.1, "--beta", help="How far the model may move from the reference model: lower lets "
                       "it move further.")


@train_command(tune_app)
def dpo(data: Path = typer.Argument(..., help="JSONL: {prompt, chosen, rejected}."),
        beta: float = BetaOpt,
        sft_weight: float = typer.Option(0.0, "--sft-weight", min=0.0, help="Add the chosen replies' NLL with this "
                                         "weight (RPO): keeps their content when DPO alone would lose it."),
        *, options) -> None:
    """Direct preference optimisation on pairs (e.g. genlab feedback export --format preference)."""
    from genlab.train.preference import tune_preference

    _report(tune_preference("dpo", data, options, beta=beta, sft_weight=sft_weight, progress=_say))


@train_command(tune_app, batch_size=typer.Option(4, "--batch-size", min=2, help="Examples per step (KTO needs 2)."))
def kto(data: Path = typer.Argument(..., help="JSONL: {prompt, completion, label}."),
        beta: float = BetaOpt, *, options) -> None:
    """KTO on thumbs up/down (e.g. genlab feedback export --format unpaired)."""
    from genlab.train.preference import tune_preference

    _report(tune_preference("kto", data, options, beta=beta, progress=_say))


@train_command(tune_app, batch_size=typer.Option(1, "--batch-size", min=1, help="Prompts per step."))
def grpo(prompts: Path = typer.Argument(..., help="JSONL: {prompt}."),
         reward_spec: str = typer.Option(..., "--reward", help="What to maximise: a folder from genlab tune reward, "
                                         "regex:PATTERN (1 when the reply matches), or python:FILE.py:FUNCTION "
                                         "(FUNCTION(reply, row) -> float; row: the prompt row's other fields)."),
         generations: int = typer.Option(4, "--generations", min=2, help="Replies sampled per prompt."),
         max_completion_length: int = typer.Option(48, "--max-completion-length", min=1, help="Tokens per sampled "
                                                    "reply."), *, options) -> None:
    """RL with GRPO against a reward model or a program.

    Example: genlab tune grpo prompts.jsonl --reward 'regex:^ANSWER: ' -o runs/rl --held-out suite.yaml"""
    from genlab.train.grpo import tune_grpo

    _report(tune_grpo(prompts, reward_spec, options, num_generations=generations,
                      max_completion_length=max_completion_length, progress=_say))


@tune_app.command("best-of-n")
def best_of_n(prompt: str = typer.Argument(..., help="The prompt to answer."),
              reward_model: Path = typer.Option(..., "--reward", help="A folder from genlab tune reward."),
              model: str = ModelOpt, n: int = typer.Option(4, "-n", min=1, help="Replies to sample."),
              temperature: float = typer.Option(0.8, "--temperature", help="Sampling temperature of the replies."),
              max_tokens: int = typer.Option(128, "--max-tokens", help="Tokens per reply.")) -> None:
    """Sample N replies and keep the one the reward model scores highest (all scores shown)."""
    from genlab.models import get_model
    from genlab.search.ttc import best_of_n as pick
    from genlab.train.reward import reward_verifier

    best, sampled = pick(get_model(model, source="tune"), [{"role": "user", "content": prompt}], n,
                         lambda text: text, reward_verifier(reward_model), temperature=temperature,
                         max_tokens=max_tokens)
    for i, (chain, score) in enumerate(zip(sampled.chains, best.scores)):
        mark = "→" if i == best.index else " "
        out.print(f"{mark} {score:+.3f}  {' '.join(chain.text.split())[:160]}")


distill_app = typer.Typer(no_args_is_help=True, help="Distil a teacher into a student: data, logits, on-policy, embeddings.")
app.add_typer(distill_app, name="distill")


@train_command(distill_app, "data", base="--student", base_help="Student: local or hf:DIR.", exclude=("held_out",))
def distill_data_(prompts: Path = typer.Argument(..., help="JSONL: {prompt}."),
                  teacher: str = typer.Option(..., "--teacher", help="Any model spec, e.g. gemini:gemini-2.5-flash."),
                  eval_data: Path = typer.Option(None, "--eval", help="JSONL {prompt, completion} references to "
                                                 "measure the student on."), *, options) -> None:
    """The teacher writes replies; the student is fine-tuned on them (sequence-level KD)."""
    from genlab.train.distill import distill_data

    _report(distill_data(prompts, teacher, options, eval_data=eval_data, progress=_say))


TeacherOpt = typer.Option("local", "--teacher", help="local or hf:DIR (logits need the weights).")
StudentOpt = typer.Option(None, "--student", help="hf:DIR sharing the teacher's tokenizer (default: the teacher "
                          "cut to --student-layers layers).")
LayersOpt = typer.Option(4, "--student-layers", min=1, help="Layers of the teacher the default student keeps.")


@train_command(distill_app, base=None, exclude=("lora", "held_out"), lr=1e-4)
def logits(data: Path = typer.Argument(..., help="JSONL: {messages} or {prompt, completion}."),
           teacher: str = TeacherOpt, student: str = StudentOpt, student_layers: int = LayersOpt,
           beta: float = typer.Option(0.0, "--beta", help="0 forward KL (classic KD), 1 reverse KL."), *,
           options) -> None:
    """Token-level KD: match the teacher's next-token distributions on the data's replies."""
    from genlab.train.distill import distill_logits

    _report(distill_logits(data, options, on_policy=False, teacher=teacher, student=student,
                           student_layers=student_layers, beta=beta, progress=_say))


@train_command(distill_app, "on-policy", base=None, exclude=("lora", "held_out"), lr=1e-4)
def on_policy(data: Path = typer.Argument(..., help="JSONL: {messages} or {prompt, completion}."),
              teacher: str = TeacherOpt, student: str = StudentOpt, student_layers: int = LayersOpt,
              beta: float = typer.Option(0.5, "--beta", help="Generalised JSD: 0 forward KL … 1 reverse KL."), *,
              options) -> None:
    """On-policy distillation (GKD): the student samples, the teacher scores its tokens."""
    from genlab.train.distill import distill_logits

    _report(distill_logits(data, options, on_policy=True, teacher=teacher, student=student,
                           student_layers=student_layers, beta=beta, progress=_say))


@distill_app.command()
def embeddings(source: str = typer.Argument(..., help="A notebook name or a folder of documents."),
               output: Path = OutputOpt,
               teacher: str = typer.Option("local", "--teacher", help="The LLM that writes queries and picks positives."),
               base: str = typer.Option(None, "--base", help="Embedder to start from (default all-MiniLM-L6-v2)."),
               max_passages: int = typer.Option(300, "--max-passages", min=10,
                                                help="Passages (sampled) the teacher writes queries for; "
                                                     "retrieval always ranks every passage."),
               candidates: int = typer.Option(5, "--candidates", min=2, help="Passages retrieved for each query, "
                                              "among which the teacher picks the positive."),
               positive: str = typer.Option("llm", "--positive",
                                            help="llm: the teacher's pick among the candidates when it "
                                                 "survives reordering them (Gecko), else the query's own passage; "
                                                 "seed: always the query's own passage."),
               held_out: Path = typer.Option(None, "--held-out",
                                             help="Human-written questions (genlab's QA format, relevance by "
                                                  "evidence) to measure before and after, never trained on."),
               epochs: int = typer.Option(1, "--epochs", min=1, help="Passes over the mined queries."),
               max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps."),
               batch_size: int = typer.Option(16, "--batch-size", min=2, help="Queries per step; the others' "
                                              "passages are each query's negatives."),
               lr: float = typer.Option(2e-5, "--lr", help="Learning rate."),
               resume: bool = typer.Option(False, "--resume", help="Reuse the queries already mined in --output.")) -> None:
    """Gecko-style: an LLM writes queries and picks positives; MiniLM is fine-tuned on them.

    Example: genlab distill embeddings velmora -o runs/emb && genlab notebook create v2 --embedder runs/emb
    """
    from genlab.train.embeddings import MINED_FILE, distill_embeddings

    writable_folder(output, "--output")
    note_busy_cores()
    with on_ctrl_c(lambda: "interrupted; the same command with --resume keeps the queries the teacher wrote"
                   if (output / MINED_FILE).is_file() else "interrupted before the teacher wrote a query"), \
            progress_bars() as bar:
        task = bar.add_task("queries", total=None)
        summary = distill_embeddings(source, teacher, output, base=base, max_passages=max_passages,
                                     candidates=candidates, positive=positive, held_out=held_out,
                                     max_steps=max_steps, epochs=epochs, batch_size=batch_size, learning_rate=lr,
                                     resume=resume,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    out.print(f"{summary.training_triples} training triples ({summary.positive} positives) from "
              f"{summary.mined_passages} of {summary.corpus_passages} passages; {summary.steps} steps")
    if picks := summary.teacher_picks:
        out.print(f"teacher's picks: {100 * picks.consistent:.0f} % the same passage in every order of the "
                  f"candidates (the others keep the query's own passage); the same position shown in every order "
                  f"{100 * picks.same_position:.0f} % of the time")
    for name, held in summary.held_out.items():
        b, a, paired = held.before, held.after, held.paired_top10
        label = "LLM-written queries of held-out passages" if name == "llm" else Path(held.file).name
        out.print(f"{label} ({held.queries}): recall@10 {b['recall@10']:.3f} → {a['recall@10']:.3f}, "
                  f"nDCG@10 {b['ndcg@10']:.3f} → {a['ndcg@10']:.3f}, recall@1 {b['recall@1']:.3f} → {a['recall@1']:.3f}; "
                  f"in the top 10 only after tuning {paired.found_only_after}, only before "
                  f"{paired.found_only_before} (McNemar p = {paired.p_value:.2g})")
    out.print(f"wrote {output}; use it with genlab notebook create NAME --embedder {output}")


@tune_app.command("compare")
def compare_(base: str = typer.Argument(..., help="Model spec, e.g. local."),
             tuned: str = typer.Argument(..., help="Model spec, e.g. hf:runs/dpo."),
             suite: Path = typer.Option(..., "--suite", help="A genlab eval suite (its models are replaced)."),
             metric: str = typer.Option("text_quality", "--metric", help="Pairwise autorater metric."),
             reward_model: Path = typer.Option(None, "--reward", help="Also report mean reward with this model."),
             output: Path = typer.Option(None, "--out", help="Results directory (default evals/compare).")) -> None:
    """Win rate of TUNED against BASE by a pairwise autorater (both orders), and mean reward."""
    from genlab.train.compare import compare_models

    result = compare_models(base, tuned, suite, output or Path("evals") / "compare", metric=metric,
                            reward_model=reward_model)
    for name, m in result["models"].items():
        low, high = m["pass_rate_ci95"]
        scores = ", ".join(f"{kind} {value:.2f}" for kind, value in m["mean_scores"].items())
        out.print(f"{name}: {m['passed']}/{m['rows']} rows pass ({100 * m['pass_rate']:.0f} %, 95 % CI "
                  f"{100 * low:.0f}–{100 * high:.0f}); mean scores: {scores or 'none'}")
    p = result["pairwise"]
    if p:
        low, high = p["win_rate_ci95"]
        out.print(f"{tuned} vs {base}: {p['candidate']} wins, {p['baseline_wins']} losses, {p['tie']} ties; "
                  f"win rate {100 * p['win_rate']:.0f} % (95 % CI {100 * low:.0f}–{100 * high:.0f}); "
                  f"position consistency {100 * p['position_consistency']:.0f} %")
    for name, value in (result.get("mean_reward") or {}).items():
        out.print(f"mean reward of {name}: {value:+.3f}" if value is not None else f"mean reward of {name}: n/a")
