"""Accuracy against compute on a task: one prompt, methods that differ only in sampling and selection.

For each item, every method sends the task's one prompt (`Task.messages`):
- direct: the answer at once, under the task's answer format (enum mode or a JSON schema);
- chain of thought: one greedy chain (temperature 0);
- K sampled chains (K = the largest k). A single sample is the first of them;
  self-consistency@k votes over the first k; best-of-k picks among the first k with a
  verifier (the model's likelihood, and for arithmetic a checker that never reads the
  gold answer; after sampling, `score_chains` adds verifiers that run a model, such as an
  autorater or a reward model); pass@k is whether any of the first k is right, the
  oracle's upper bound.
A chain's answer is what follows its "The answer is"; a chain without one gives none and
counts as wrong. On a label task each chain is decoded under a grammar that ends it on a
label (`Task.chain_grammar`), where the backend takes grammars. Every method is measured on the same samples; its tokens are those of
the calls and chains it used.

One `ItemRecord` per item holds everything the curves are computed from, so a long run
appends them to a JSONL file and resumes from it (`run_task(records=...)`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from genlab.errors import ConfigError
from genlab.evaluate.autorater import wilson_interval
from genlab.io import append_jsonl, resume_jsonl
from genlab.models import Choice, Model
from genlab.search.tasks import Task
from genlab.search.ttc import Verifier, arithmetic_check, best_index, majority_vote


@dataclass(frozen=True)
class BenchConfig:
    ks: tuple[int, ...] = (1, 2, 4, 8, 16)
    temperature: float = 0.7
    max_tokens: int = 128
    limit: int | None = None      # only the first N items of the split
    concurrency: int = 2
    chain_grammar: bool = True    # decode label chains under Task.chain_grammar where possible

    def __post_init__(self) -> None:
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError(f"every k in --ks must be at least 1, got {','.join(map(str, self.ks))}")
        if self.temperature <= 0 and max(self.ks) > 1:
            raise ConfigError("sampled chains need --temperature > 0: greedy decoding gives k identical chains")

    def fingerprint(self, model: Model, task: Task) -> dict:
        """What a record must have been made with to be reused on resume."""
        return {"model": model.spec, "task": task.name, "K": max(self.ks), "temperature": self.temperature,
                "max_tokens": self.max_tokens, "grammar": chain_options(model, task, self.chain_grammar) != {}}


def chain_options(model: Model, task: Task, use_grammar: bool = True) -> dict:
    """How every chain of the task is decoded: under its grammar where the backend takes one."""
    grammar = task.chain_grammar() if use_grammar else None
    return {"grammar": grammar} if grammar and model.backend.supports_grammar else {}


@dataclass
class ItemRecord:
    """What the methods produced on one item (answers are None where a chain gave none)."""

    id: str
    gold: str
    direct: str | None
    direct_tokens: int
    greedy: str | None
    greedy_tokens: int
    answers: list[str | None]         # the K sampled chains' answers, in sampling order
    chain_tokens: list[int]           # each sampled chain's share of the prompt plus its completion
    likelihood: list[float | None]    # each chain's mean token log-probability
    checker: list[float] | None       # arithmetic_check of each chain (checkable tasks only)
    settings: dict = field(default_factory=dict)
    question: str = ""                # what a verifier is shown (records before these two lack them)
    chains: list[str] = field(default_factory=list)  # the K sampled chains' texts


def run_item(model: Model, task: Task, item: dict, config: BenchConfig, settings: dict) -> ItemRecord:
    """Run every method on one item. The gold answer is only stored, never shown to a verifier."""
    question = task.question(item)
    messages = task.messages(question)
    K = max(config.ks)
    direct = model.chat(messages, temperature=0, max_tokens=16, response_format=task.answer_format())
    chains = chain_options(model, task, config.chain_grammar)
    greedy = model.chat(messages, temperature=0, max_tokens=config.max_tokens, **chains)
    sampled = model.chat(messages, n=K, temperature=config.temperature, max_tokens=config.max_tokens,
                         logprobs=True, **chains)
    prompt_share = sampled.usage.prompt_tokens / K
    completions = [len(c.logprobs) if c.logprobs else 0 for c in sampled.choices]
    if sum(completions) == 0:  # a backend without logprobs: share the completion tokens evenly
        completions = [sampled.usage.completion_tokens / K] * K
    return ItemRecord(
        id=_item_id(item), gold=task.gold(item),
        direct=task.read_direct(direct.text), direct_tokens=direct.usage.total_tokens,
        greedy=task.extract(greedy.text), greedy_tokens=greedy.usage.total_tokens,
        answers=[task.extract(c.text) for c in sampled.choices],
        chain_tokens=[round(prompt_share + n) for n in completions],
        likelihood=[c.mean_logprob for c in sampled.choices],
        checker=[arithmetic_check(question, c) for c in sampled.choices] if task.checkable else None,
        settings=settings, question=question, chains=[c.text for c in sampled.choices])


def read_records(path: Path, settings: dict) -> dict[str, ItemRecord]:
    """The records of an earlier run of the same settings (a torn last line is dropped)."""
    return {id_: ItemRecord(**row) for id_, row in _resumable_rows(path, settings).items()}


def _resumable_rows(path: Path, settings: dict) -> dict[str, dict]:
    """The rows, by id, of a JSONL file that a run appends to one at a time (a torn last line
    is cut off, and that item runs again); rows made with other settings are refused."""
    rows = {}
    for number, row in resume_jsonl(path):
        if row.get("settings") != settings:
            raise ConfigError(f"{path}:{number} was made with other settings ({row.get('settings')}, now "
                              f"{settings}); give another records file, or delete this one to start over")
        rows[row["id"]] = row
    return rows


def run_task(model: Model, task: Task, config: BenchConfig, *, records: Path | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[ItemRecord]:
    """Run the methods on the task's items; with ``records``, append each finished item to that
    JSONL file and skip the items it already holds."""
    items = task.items[: config.limit] if config.limit else task.items
    settings = config.fingerprint(model, task)
    done = read_records(records, settings) if records else {}
    todo = [item for item in items if _item_id(item) not in done]
    if records:
        records.parent.mkdir(parents=True, exist_ok=True)
    finished = len(items) - len(todo)
    if progress:
        progress(finished, len(items))
    with ThreadPoolExecutor(max(1, config.concurrency)) as pool:
        for record in pool.map(lambda item: run_item(model, task, item, config, settings), todo):
            done[record.id] = record
            if records:
                append_jsonl(records, asdict(record))
            finished += 1
            if progress:
                progress(finished, len(items))
    return [done[_item_id(item)] for item in items]


def score_chains(records: list[ItemRecord], verifier: Verifier, *, chains: int | None = None,
                 path: Path | None = None, settings: dict | None = None,
                 progress: Callable[[int, int], None] | None = None) -> list[list[float | None]]:
    """Score the first ``chains`` sampled chains of every record (all of them by default) with a
    verifier that runs a model, such as an autorater or a reward model.

    It runs after sampling and one chain at a time, so the verifier's model never shares the
    cores with the sampler's. With ``path``, each item's scores are appended to that JSONL file
    (tagged with ``settings``, which say which verifier made them) and a run started again
    resumes from it. The verifier sees the question and the chain, never the gold answer.
    """
    if any(not r.chains or not r.question for r in records):
        raise ConfigError("these records hold no chain texts (an older genlab wrote them), so a verifier has "
                          "nothing to read; give another records folder to sample the chains again")
    settings = {**(settings or {}), "chains": chains}
    texts = {r.id: r.chains[:chains] if chains else r.chains for r in records}
    # A row is reused only for the very chains it scored: records sampled again get new scores.
    digest = {id_: hashlib.sha256(json.dumps(chain_texts).encode()).hexdigest()[:16] for id_, chain_texts in texts.items()}
    done = {id_: row["scores"] for id_, row in _resumable_rows(path, settings).items()
            if row.get("chains_sha") == digest.get(id_)} if path else {}
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
    for finished, record in enumerate(records):
        if progress:
            progress(finished, len(records))
        if record.id in done:
            continue
        done[record.id] = [verifier(record.question, Choice(i, text, None)) for i, text in enumerate(texts[record.id])]
        if path:
            append_jsonl(path, {"id": record.id, "scores": done[record.id], "chains_sha": digest[record.id],
                                "settings": settings})
    if progress:
        progress(len(records), len(records))
    return [done[r.id] for r in records]


def _item_id(item: dict) -> str:
    # Shipped items carry an id; an item without one is known by its question or text.
    return str(item.get("id") or item.get("question") or item.get("text"))


# -- curves ------------------------------------------------------------------------------

def _row(method: str, k: int | None, correct: int, answered: int, tokens: float, n: int) -> dict:
    low, high = wilson_interval(correct, n)
    return {"method": method, "k": k, "correct": correct, "items": n, "accuracy": correct / n,
            "ci95": [low, high], "answered": answered, "tokens_per_item": tokens / n}


def curves(records: list[ItemRecord], ks: tuple[int, ...],
           scores: dict[str, list[list[float | None]]] | None = None) -> list[dict]:
    """Accuracy (with its 95 % Wilson interval) and tokens per item of every method and k.

    ``scores`` adds a best-of row per verifier that `score_chains` ran (name: each record's
    scores), at every k up to the number of chains it scored."""
    if not records:
        raise ConfigError("no items to score")
    n = len(records)
    rows = [_row("direct", None, sum(r.direct == r.gold for r in records),
                 sum(r.direct is not None for r in records), sum(r.direct_tokens for r in records), n),
            _row("chain of thought", None, sum(r.greedy == r.gold for r in records),
                 sum(r.greedy is not None for r in records), sum(r.greedy_tokens for r in records), n)]
    verifiers = {"best-of (likelihood)": lambda r: r.likelihood}
    if all(r.checker is not None for r in records):
        verifiers["best-of (checker)"] = lambda r: r.checker
    for k in ks:
        tokens = sum(sum(r.chain_tokens[:k]) for r in records)
        picks: dict[str, list[str | None]] = {
            "self-consistency": [majority_vote(r.answers[:k]).answer for r in records],
            **{name: [r.answers[best_index(read(r)[:k])] for r in records] for name, read in verifiers.items()},
            **{f"best-of ({name})": [r.answers[best_index(s[:k])] for r, s in zip(records, per_item)]
               for name, per_item in (scores or {}).items() if all(len(s) >= k for s in per_item)}}
        for method, answers in picks.items():
            rows.append(_row(method, k, sum(a == r.gold for a, r in zip(answers, records)),
                             sum(a is not None for a in answers), tokens, n))
        rows.append(_row("pass@k (oracle)", k, sum(r.gold in r.answers[:k] for r in records),
                         sum(any(a is not None for a in r.answers[:k]) for r in records), tokens, n))
    return rows


def chain_stats(records: list[ItemRecord]) -> dict:
    """How the sampled chains went: share right, share without an answer, and how often the
    checker's full marks meant a right answer (its precision) and caught one (its recall)."""
    chains = [(a, r.gold, c) for r in records for a, c in zip(r.answers, r.checker or [None] * len(r.answers))]
    stats = {"chains": len(chains), "right": sum(a == g for a, g, _ in chains) / len(chains),
             "no_answer": sum(a is None for a, _, _ in chains) / len(chains),
             "distinct_answers_per_item": sum(len(Counter(a for a in r.answers if a)) for r in records) / len(records)}
    checked = [(a == g, c == 1.0) for a, g, c in chains if c is not None]
    if checked:
        passed = [right for right, full in checked if full]
        stats["checker_precision"] = sum(passed) / len(passed) if passed else None
        right = [full for ok, full in checked if ok]
        stats["checker_recall"] = sum(right) / len(right) if right else None
    return stats


# -- sampling controls ---------------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    """The sampling controls to sweep; a top_k of 0 means "not set" (the whole vocabulary)."""

    temperatures: tuple[float, ...] = (0.3, 0.7, 1.0, 1.5)
    top_ps: tuple[float, ...] = (0.5, 0.9, 1.0)
    top_ks: tuple[int, ...] = (0, 10)
    samples: int = 8

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ConfigError("--samples must be at least 2 to see any variance")
        if any(t <= 0 for t in self.temperatures):
            raise ConfigError("every temperature must be > 0: at 0 every sample is the same chain")
        if any(not 0 < p <= 1 for p in self.top_ps):
            raise ConfigError("every top-p must be in (0, 1]")
        if any(k < 0 for k in self.top_ks):
            raise ConfigError("every top-k must be >= 0 (0: not set)")


def variance(model: Model, task: Task, grid: Grid, *, limit: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """For each setting of the grid, sample the task's one prompt ``grid.samples`` times per
    item and report the variance it buys (distinct answers per item, items whose samples
    disagree) next to what it costs (accuracy of one sample) and what it allows (pass@samples,
    self-consistency@samples)."""
    items = task.items[:limit] if limit else task.items
    cells = [(t, p, k) for t in grid.temperatures for p in grid.top_ps for k in grid.top_ks]
    rows = []
    for done, (temperature, top_p, top_k) in enumerate(cells):
        options = {"temperature": temperature, "top_p": top_p, "top_k": top_k or None, **chain_options(model, task)}

        def one(item: dict) -> tuple[str, list[str | None]]:
            response = model.chat(task.messages(task.question(item)), n=grid.samples, max_tokens=128, **options)
            return task.gold(item), [task.extract(c.text) for c in response.choices]

        with ThreadPoolExecutor(2) as pool:
            sampled = list(pool.map(one, items))
        n, chains = len(sampled), len(sampled) * grid.samples
        sample_right = sum(a == gold for gold, answers in sampled for a in answers)
        rows.append({
            "temperature": temperature, "top_p": top_p, "top_k": top_k, "items": n, "samples": grid.samples,
            "distinct_answers": sum(len(set(a for a in answers if a is not None)) for _, answers in sampled) / n,
            "items_disagreeing": sum(len(set(answers)) > 1 for _, answers in sampled) / n,
            "no_answer": sum(a is None for _, answers in sampled for a in answers) / chains,
            "sample_accuracy": sample_right / chains,
            "sample_accuracy_ci95": list(wilson_interval(sample_right, chains)),
            "pass_at_samples": sum(gold in answers for gold, answers in sampled) / n,
            "self_consistency": sum(majority_vote(answers).answer == gold for gold, answers in sampled) / n})
        if progress:
            progress(done + 1, len(cells))
    return rows


def plot_variance(rows: list[dict], path: str, title: str) -> None:
    """Distinct answers per item and accuracy against temperature, a line per top-p, a panel per top-k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top_ks = sorted({r["top_k"] for r in rows})
    fig, axes = plt.subplots(2, len(top_ks), figsize=(4.5 * len(top_ks), 6.5), dpi=110, squeeze=False, sharex=True)
    for column, top_k in enumerate(top_ks):
        for top_p in sorted({r["top_p"] for r in rows}):
            mine = sorted((r for r in rows if r["top_k"] == top_k and r["top_p"] == top_p),
                          key=lambda r: r["temperature"])
            x = [r["temperature"] for r in mine]
            axes[0][column].plot(x, [r["distinct_answers"] for r in mine], "o-", label=f"top-p {top_p}")
            axes[1][column].plot(x, [r["sample_accuracy"] for r in mine], "o-", label=f"one sample, top-p {top_p}")
            axes[1][column].plot(x, [r["pass_at_samples"] for r in mine], "x:", color=axes[1][column].lines[-1].get_color(),
                                 label=f"pass@{mine[0]['samples']}, top-p {top_p}")
        axes[0][column].set_title(f"{title} · top-k {top_k or 'not set'}", fontsize=9)
        axes[0][column].set_ylabel("distinct answers per item")
        axes[1][column].set_ylabel("accuracy")
        axes[1][column].set_xlabel("temperature")
        for ax in axes[:, column]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot(rows_by_task: dict[str, list[dict]], path: str, model: str) -> None:
    """Accuracy against tokens per item, one panel per task, 95 % intervals as error bars."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows_by_task), figsize=(5 * len(rows_by_task), 4.2), dpi=110, squeeze=False)
    styles = {"self-consistency": ("o-", "C0"), "best-of (checker)": ("s-", "C1"),
              "best-of (likelihood)": ("^-", "C2"), "pass@k (oracle)": (":", "black"),
              "direct": ("D", "C3"), "chain of thought": ("P", "C4")}
    for ax, (task, rows) in zip(axes[0], rows_by_task.items()):
        others = [m for m in dict.fromkeys(r["method"] for r in rows) if m not in styles]  # model verifiers
        for method, (style, colour) in {**styles, **{m: ("v-", f"C{5 + i}") for i, m in enumerate(others)}}.items():
            mine = [r for r in rows if r["method"] == method]
            if not mine:
                continue
            x = [r["tokens_per_item"] for r in mine]
            y = [r["accuracy"] for r in mine]
            err = [[r["accuracy"] - r["ci95"][0] for r in mine], [r["ci95"][1] - r["accuracy"] for r in mine]]
            ax.errorbar(x, y, yerr=err, fmt=style, color=colour, capsize=2, markersize=4, label=method, alpha=0.85)
        for r in rows:
            if r["method"] == "self-consistency":
                ax.annotate(f"k={r['k']}", (r["tokens_per_item"], r["accuracy"]), textcoords="offset points",
                            xytext=(3, -10), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("tokens per item")
        ax.set_ylabel("accuracy (95 % interval)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{task} · {model} · {rows[0]['items']} items", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
