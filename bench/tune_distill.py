"""Tuning and distillation on this machine, end to end, with the embedded model.

    .venv/bin/python bench/tune_distill.py [format] [enum] [reward] [grpo] [distillation] [gecko]

Sections named run (all by default); the others keep their last results in the JSON.

1. format: SFT, DPO and KTO teach one behaviour a program can check, answering
   "ANSWER: <value>" (data from examples/tune/generate.py: 140 training questions; the
   rejected replies are the embedded model's own). Each run's own --held-out measurement
   (genlab.train.effect) on 100 held-out questions, starting model vs trained, both run
   by transformers: format compliance, and whether the right value is in the reply.
   Settings (steps, learning rate, DPO's sft_weight) were chosen on format_dev.yaml.
2. enum: does a fine-tuned small model beat zero-shot enum mode? The shipped topics task
   split once by a seed (140 to train on, 100 held out); SFT on the training rows (the
   classifier's own prompt, the label as the reply), then enum mode on the held-out rows:
   zero-shot, few-shot (the task's four examples) and fine-tuned, all by transformers
   (the hf: backend scores each label), and the embedded model's enum mode for reference,
   each label scored whole (as genlab does) and as one grammar decoded token by token.
3. reward: a reward model on pairs that form and length cannot separate (both replies
   "ANSWER: <value>", the rejected value a near miss: right_wrong_train.jsonl, 420 pairs
   from the 140 training questions), pairwise accuracy before (seeded random head) and
   after on the 100 held-out questions' pairs; then best-of-N with it: 8 replies per
   held-out question sampled from the format SFT model, the reward model's pick among the
   first N, correct (the right value in the reply) at N = 1, 4, 8, beside a majority vote
   and pass@N (a right reply among the N: what a perfect picker would reach).
4. grpo: GRPO from the format SFT model against a programmatic reward (the checker
   examples/tune/checks.py:right_answer, which reads the prompt row's answer), measured by
   --held-out format.yaml: the share of right values before and after.
5. distillation: a 4-layer student cut from the embedded model (the teacher), same steps
   for each: data (SFT on the teacher's replies) vs logits (token-level KD) vs on-policy
   (GKD) vs on-policy after a data warm start (half the steps each, as the GKD paper starts
   from a fine-tuned student). Metric: held-out NLL per token of the teacher's replies, and
   the fraction of the student-teacher gap each closes.
6. gecko: Gecko-style embedding distillation on the ~3,000-chunk corpus of
   bench/ground_retrieval.py (the example notebook's sources among standard-library
   docstrings). The embedded model writes questions for GECKO_PASSAGES sampled chunks (a
   fifth held out) and picks positives in three candidate orders; MiniLM is tuned on the
   (question, positive, hard negative) triples. Before and after,
   every chunk is ranked for the held-out LLM-written queries and for the human-written
   Velmora questions: recall@1/10 and nDCG@10.

Writes bench/results/tune_distill.json. Wall times are for 2 cores.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, enum_per_token, write  # noqa: E402

TUNE = ROOT / "examples" / "tune"
VELMORA = ROOT / "examples" / "notebook" / "velmora"
STEPS = int(os.environ.get("BENCH_STEPS", "30"))
SECTIONS = ("format", "enum", "reward", "grpo", "distillation", "gecko")
#: Chosen on format_dev.yaml (30 questions), never on the held-out 100.
FORMAT_STEPS, FORMAT_MAX_LENGTH, DPO_SFT_WEIGHT = 40, 96, 1.0
#: Chunks the teacher writes queries for (about 5 s each on two cores).
GECKO_PASSAGES = 250
#: The topics task split once by this seed: ENUM_HELD_OUT items for the figures, the rest to train on.
ENUM_SEED, ENUM_HELD_OUT, ENUM_STEPS = 20261130, 100, 40
#: Reward model: one epoch of the 420 training pairs (dev: 50 % -> 73 % on 30 dev pairs).
RM_STEPS, RM_BATCH = 53, 8
#: Best-of-N: replies sampled per held-out question, and the N reported.
BON_SAMPLES, BON_N, BON_TEMPERATURE = 8, (1, 4, 8), 1.0
#: GRPO settings, chosen on format_dev.yaml (30 questions, right value): 1e-5 with batch 4 x 4 replies
#: took it 63 % -> 67 % in 20 steps; 5e-5 with batch 2 x 8 collapsed it to 13 % in 40 (training reward 0.75 -> 0).
GRPO_STEPS, GRPO_BATCH, GRPO_GENERATIONS, GRPO_LR = 40, 4, 4, 1e-5


def timed(label: str, fn):
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"[{label}: {seconds:.0f} s]")
    return result, seconds


def format_section(opts) -> dict:
    from genlab.train.preference import tune_preference
    from genlab.train.sft import tune_sft

    suite = TUNE / "format.yaml"
    methods = {
        "sft": lambda o: tune_sft(TUNE / "format_sft.jsonl", o),
        "dpo": lambda o: tune_preference("dpo", TUNE / "format_pairs.jsonl", o, sft_weight=DPO_SFT_WEIGHT),
        "kto": lambda o: tune_preference("kto", TUNE / "format_thumbs.jsonl", o),
    }
    section: dict = {"suite": str(suite.relative_to(ROOT)), "steps": FORMAT_STEPS, "max_length": FORMAT_MAX_LENGTH,
                     "dpo_sft_weight": DPO_SFT_WEIGHT}
    for name, train in methods.items():
        options = opts(f"format-{name}", max_steps=FORMAT_STEPS, max_length=FORMAT_MAX_LENGTH, held_out=suite)
        summary, seconds = timed(name, lambda: train(options))
        effect = summary.held_out_effect
        section[name] = {"rows": summary.rows, "steps": summary.steps, "train_seconds": summary.seconds,
                         "seconds_with_eval": round(seconds, 1), "learning_rate": options.learning_rate,
                         "loss_first": summary.loss_first, "loss_last": summary.loss_last,
                         "before": asdict(effect)["before"], "after": asdict(effect)["after"],
                         "held_out_rows": effect.rows}
        print(f"{name}: held-out format {effect.before['regex'].rate:.2f} → {effect.after['regex'].rate:.2f}, "
              f"right value {effect.before['icontains'].rate:.2f} → {effect.after['icontains'].rate:.2f}")
    return section


def enum_section(opts, work: Path, base: Path) -> dict:
    """Zero-shot vs few-shot vs fine-tuned enum mode on held-out topics, all through the hf:
    backend (enum mode scores each label), plus the embedded model's own enum mode."""
    import random

    from genlab.evaluate.autorater import wilson_interval
    from genlab.io import write_jsonl
    from genlab.models import get_model
    from genlab.search.classify import Classifier
    from genlab.search.tasks import TOPIC_EXAMPLES, load_task
    from genlab.train.sft import tune_sft

    task = load_task("topics")
    items = list(task.items)
    random.Random(ENUM_SEED).shuffle(items)
    held, train = items[:ENUM_HELD_OUT], items[ENUM_HELD_OUT:]
    demo = Classifier(get_model(f"hf:{base}", source="bench"), task.labels)
    data = work / "enum-train.jsonl"
    # prompt/completion rows: the loss is on the label only, not on the prompt around it.
    write_jsonl([{"prompt": demo.messages(i["text"]), "completion": [{"role": "assistant", "content": i["label"]}]}
                 for i in train], data)
    options = opts("enum-sft", max_steps=ENUM_STEPS, max_length=128)
    summary, seconds = timed("enum sft", lambda: tune_sft(data, options))

    def accuracy(spec: str, examples=None) -> dict:
        classifier = Classifier(get_model(spec, source="bench"), task.labels, examples=examples)
        started = time.perf_counter()
        answers = list(classifier.classify_many([i["text"] for i in held], concurrency=1))
        correct = sum(a.label == i["label"] for a, i in zip(answers, held))
        return {"correct": correct, "n": len(held), "accuracy": correct / len(held),
                "ci95": list(wilson_interval(correct, len(held))),
                "valid": sum(a.label in task.labels for a in answers),
                "seconds": round(time.perf_counter() - started, 1)}

    section = {"task": "topics", "labels": task.labels, "train_rows": len(train), "held_out": len(held),
               "sft": {"steps": summary.steps, "train_seconds": summary.seconds,
                       "seconds_with_data": round(seconds, 1), "loss_first": summary.loss_first,
                       "loss_last": summary.loss_last},
               "zero_shot": accuracy(f"hf:{base}"),
               "few_shot": accuracy(f"hf:{base}", TOPIC_EXAMPLES),
               "fine_tuned": accuracy(f"hf:{options.output}"),
               "embedded_zero_shot": accuracy("local"), "embedded_few_shot": accuracy("local", TOPIC_EXAMPLES)}
    with enum_per_token():     # the embedded model's enum mode before it scored labels whole
        section |= {"embedded_zero_shot_per_token": accuracy("local"),
                    "embedded_few_shot_per_token": accuracy("local", TOPIC_EXAMPLES)}
    print("enum accuracy on held-out topics: " + ", ".join(
        f"{k} {section[k]['accuracy']:.2f}" for k in ("zero_shot", "few_shot", "fine_tuned", "embedded_zero_shot",
                                                     "embedded_few_shot", "embedded_zero_shot_per_token",
                                                     "embedded_few_shot_per_token")))
    return section


def format_sft_model(opts) -> Path:
    """The format SFT model the reward and grpo sections start from (trained once per bench run)."""
    from genlab.train.sft import tune_sft

    options = opts("format-sft-start", max_steps=FORMAT_STEPS, max_length=FORMAT_MAX_LENGTH)
    if not (options.output / "genlab-train.json").is_file():
        timed("format sft (start of reward and grpo)", lambda: tune_sft(TUNE / "format_sft.jsonl", options))
    return options.output


def reward_section(opts) -> dict:
    from collections import Counter

    from genlab.evaluate.autorater import wilson_interval
    from genlab.io import read_jsonl
    from genlab.models import get_model
    from genlab.train.reward import RewardModel, tune_reward

    options = opts("rm", max_steps=RM_STEPS, batch_size=RM_BATCH, max_length=64)
    rm, seconds = timed("reward model", lambda: tune_reward(TUNE / "right_wrong_train.jsonl", options,
                                                           held_out_pairs=TUNE / "right_wrong_eval.jsonl"))
    pairs = rm.pair_accuracy
    section = {"rows": rm.rows, "held_out_pairs": pairs.pairs, "held_out_accuracy_before": pairs.before.rate,
               "held_out_accuracy_before_ci95": pairs.before.ci95, "held_out_accuracy_after": pairs.after.rate,
               "held_out_accuracy_after_ci95": pairs.after.ci95, "loss_first": rm.loss_first,
               "loss_last": rm.loss_last, "steps": rm.steps, "seconds": round(seconds, 1)}
    print(f"reward model: held-out accuracy {pairs.before} → {pairs.after} on {pairs.pairs} pairs")

    policy = get_model(f"hf:{format_sft_model(opts)}", source="bench")
    scorer = RewardModel(options.output)
    questions = [row for _, row in read_jsonl(TUNE / "format_eval.jsonl", "held-out questions")]
    picks = {n: {"reward_model": 0, "majority": 0, "pass_at_n": 0} for n in BON_N}
    started = time.perf_counter()
    for index, row in enumerate(questions):
        prompt = [{"role": "user", "content": row["q"]}]
        replies = [c.text.strip() for c in policy.chat(prompt, n=BON_SAMPLES, temperature=BON_TEMPERATURE,
                                                       top_p=1.0, top_k=0, max_tokens=12, seed=index).choices]
        scores = [scorer.score(prompt, [{"role": "assistant", "content": r}]) for r in replies]
        right = [row["answer"].lower() in r.lower() for r in replies]
        for n in BON_N:
            best = max(range(n), key=lambda i: (scores[i], -i))
            top = Counter(r.lower() for r in replies[:n]).most_common(1)[0][0]
            picks[n]["reward_model"] += right[best]
            picks[n]["majority"] += row["answer"].lower() in top
            picks[n]["pass_at_n"] += any(right[:n])
    section["best_of_n"] = {
        "policy": "format SFT model", "samples": BON_SAMPLES, "temperature": BON_TEMPERATURE, "top_p": 1.0, "top_k": 0,
        "questions": len(questions), "seconds": round(time.perf_counter() - started, 1),
        **{f"n={n}": {k: {"correct": c, "rate": c / len(questions), "ci95": list(wilson_interval(c, len(questions)))}
                      for k, c in counts.items()} for n, counts in picks.items()}}
    print("best-of-N correct: " + ", ".join(f"N={n} {c['reward_model'] / len(questions):.2f} (majority "
                                           f"{c['majority'] / len(questions):.2f}, pass@N {c['pass_at_n'] / len(questions):.2f})"
                                           for n, c in picks.items()))
    return section


def grpo_section(opts) -> dict:
    from genlab.train.grpo import tune_grpo

    suite = TUNE / "format.yaml"
    start = format_sft_model(opts)
    options = opts("grpo", base=f"hf:{start}", max_steps=GRPO_STEPS, batch_size=GRPO_BATCH, learning_rate=GRPO_LR,
                   held_out=suite)
    summary, seconds = timed("grpo", lambda: tune_grpo(TUNE / "right_wrong_prompts.jsonl",
                                                       f"python:{TUNE / 'checks.py'}:right_answer", options,
                                                       num_generations=GRPO_GENERATIONS, max_completion_length=12))
    effect = summary.held_out_effect
    rewards = summary.rewards
    section = {"start": "format SFT model", "reward": "examples/tune/checks.py:right_answer", "steps": summary.steps,
               "batch_size": GRPO_BATCH, "generations": GRPO_GENERATIONS, "learning_rate": GRPO_LR,
               "train_seconds": summary.seconds, "seconds_with_eval": round(seconds, 1),
               "train_reward_first_5": sum(rewards[:5]) / max(1, len(rewards[:5])),
               "train_reward_last_5": sum(rewards[-5:]) / max(1, len(rewards[-5:])),
               "before": asdict(effect)["before"], "after": asdict(effect)["after"], "held_out_rows": effect.rows}
    print(f"grpo: held-out right value {effect.before['icontains'].rate:.2f} → "
          f"{effect.after['icontains'].rate:.2f}, format {effect.before['regex'].rate:.2f} → "
          f"{effect.after['regex'].rate:.2f}")
    return section


def distillation_section(opts, work: Path, base: Path) -> dict:
    """Three distillations into the same 4-layer student, same steps."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from genlab.models import get_model
    from genlab.train.data import held_out_split
    from genlab.train.distill import build_student, distill_logits, reply_nll
    from genlab.train.sft import tune_sft

    teacher_model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base)
    build_student(teacher_model, 4).save_pretrained(work / "student-init")
    tokenizer.save_pretrained(work / "student-init")
    teacher = get_model("local", source="bench")
    prompts = [json.loads(line)["prompt"] for line in (TUNE / "format_pairs.jsonl").read_text().splitlines()]
    prompts += [[{"role": "user", "content": json.loads(line)["q"]}]
                for line in (TUNE / "format_eval.jsonl").read_text().splitlines()]
    data = [{"prompt": p, "completion": [{"role": "assistant", "content": teacher.chat(
        p, temperature=0, max_tokens=48, cache=True).text.strip()}]} for p in prompts]
    train, held = held_out_split(data, 0)
    (work / "kd-train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    held_conversations = [r["prompt"] + r["completion"] for r in held]
    student_nll = reply_nll(AutoModelForCausalLM.from_pretrained(work / "student-init"), tokenizer, held_conversations)
    teacher_nll = reply_nll(teacher_model, tokenizer, held_conversations)
    del teacher_model
    kd = {"train_rows": len(train), "held_out": len(held), "student_nll_before": student_nll,
          "teacher_nll": teacher_nll, "student_layers": 4, "teacher_layers": 30}
    common = dict(batch_size=4, max_length=128, learning_rate=1e-4)
    init = f"hf:{work / 'student-init'}"

    def nll(folder: Path) -> float:
        return reply_nll(AutoModelForCausalLM.from_pretrained(folder), tokenizer, held_conversations)

    _, seconds = timed("distill data", lambda: tune_sft(work / "kd-train.jsonl", opts("kd-data", base=init, **common)))
    kd["data"] = {"steps": STEPS, "seconds": seconds, "student_nll_after": nll(work / "kd-data")}
    for name, on_policy in (("logits", False), ("on-policy", True)):
        summary, seconds = timed(f"distill {name}", lambda: distill_logits(
            work / "kd-train.jsonl", opts(f"kd-{name}", **common), on_policy=on_policy, student=init,
            max_new_tokens=32))
        kd[name] = {"steps": STEPS, "seconds": seconds, "student_nll_after": summary.reply_nll.student_after}
    # The same number of steps, split: data first (the student learns to write the replies'
    # form), then on-policy (it is corrected on what it now writes).
    half = STEPS // 2
    _, warm_seconds = timed("warm start (data)", lambda: tune_sft(
        work / "kd-train.jsonl", opts("kd-warm", base=init, max_steps=half, **common)))
    summary, seconds = timed("distill on-policy after warm start", lambda: distill_logits(
        work / "kd-train.jsonl", opts("kd-warm-on-policy", max_steps=STEPS - half, **common), on_policy=True,
        student=f"hf:{work / 'kd-warm'}", max_new_tokens=32))
    kd["data-then-on-policy"] = {"steps": STEPS, "seconds": warm_seconds + seconds,
                                 "student_nll_after": summary.reply_nll.student_after,
                                 "after_warm_start_nll": summary.reply_nll.student_before}
    gap = student_nll - teacher_nll
    for method in ("data", "logits", "on-policy", "data-then-on-policy"):
        kd[method]["gap_closed"] = (student_nll - kd[method]["student_nll_after"]) / gap
    print(f"distillation (held-out NLL/token, teacher {teacher_nll:.3f}, student before {student_nll:.3f}): "
          + ", ".join(f"{m} {kd[m]['student_nll_after']:.3f} ({100 * kd[m]['gap_closed']:.0f} % of the gap, "
                      f"{kd[m]['seconds']:.0f} s)" for m in ("data", "logits", "on-policy", "data-then-on-policy")))
    return kd


def add_recall_intervals(held: dict) -> None:
    """95 % Wilson intervals of recall@1 and @10 where each query has one relevant passage
    (the LLM-written queries: recall@k is then the share of queries whose passage is in the top k)."""
    from genlab.evaluate.autorater import wilson_interval

    for phase in ("before", "after"):
        for k in (1, 10):
            found = round(held[phase][f"recall@{k}"] * held["queries"])
            held[phase][f"recall@{k}_ci95"] = wilson_interval(found, held["queries"])


def gecko_section(work: Path) -> dict:
    from bench.ground_retrieval import TARGET_CHUNKS, write_distractors
    from genlab.train.embeddings import distill_embeddings

    corpus = work / "corpus"
    corpus.mkdir()
    for source in VELMORA.iterdir():
        (corpus / source.name).write_bytes(source.read_bytes())
    write_distractors(corpus, chars=TARGET_CHUNKS * 600)
    qa = ROOT / "examples" / "notebook" / "velmora-qa.jsonl"
    run, _ = timed("gecko", lambda: distill_embeddings(str(corpus), "local", work / "emb",
                                                       max_passages=GECKO_PASSAGES, held_out=qa))
    record = asdict(run)
    section = {k: record[k] for k in ("corpus_passages", "mined_passages", "training_triples", "query_failures",
                                   "teacher_picks", "held_out", "steps", "mining_seconds", "training_seconds")}
    add_recall_intervals(section["held_out"]["llm"])
    for held in section["held_out"].values():       # no paths of this machine in the results
        held["file"] = Path(held["file"]).name
    for name, held in section["held_out"].items():
        b, a = held["before"], held["after"]
        print(f"gecko, {name} queries ({held['queries']}): recall@10 {b['recall@10']:.3f} → {a['recall@10']:.3f}, "
              f"nDCG@10 {b['ndcg@10']:.3f} → {a['ndcg@10']:.3f}, recall@1 {b['recall@1']:.3f} → {a['recall@1']:.3f}; "
              f"paired top 10: {held['paired_top10']}")
    return section


def main(sections: list[str]) -> None:
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        sys.exit(f"no section {unknown[0]}; choose from {', '.join(SECTIONS)}")
    work = Path(tempfile.mkdtemp(prefix="genlab-bench-tune-"))
    os.environ["GENLAB_HOME"] = str(work / "home")
    from genlab.train.base import base_model_dir
    from genlab.train.trainer import TrainOptions

    base = base_model_dir(print)
    previous = RESULTS / "tune_distill.json"
    results = json.loads(previous.read_text()) if previous.is_file() else {}
    results.pop("machine", None)

    def opts(name: str, **kw) -> TrainOptions:
        return TrainOptions(output=work / name, max_steps=kw.pop("max_steps", STEPS), save_steps=1000, **kw)

    run = {"format": lambda: format_section(opts), "enum": lambda: enum_section(opts, work, base), "reward": lambda: reward_section(opts),
           "grpo": lambda: grpo_section(opts),
           "distillation": lambda: distillation_section(opts, work, base), "gecko": lambda: gecko_section(work)}
    for name in sections or SECTIONS:
        results[name] = {**run[name](), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    write("tune_distill", results)


if __name__ == "__main__":
    main(sys.argv[1:])
