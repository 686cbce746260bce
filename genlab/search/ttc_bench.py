"""Accuracy against compute on a task: direct, chain of thought, self-consistency@k, best-of-N.

For each item, one direct answer, one greedy chain of thought, and K sampled chains
(K = the largest k). Self-consistency@k votes over the first k of those chains, and
best-of-N picks among the first N with the verifier, so every method is measured on
the same samples; its tokens are those of the chains it used.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from genlab.errors import ConfigError
from genlab.models import Model
from genlab.search import cot
from genlab.search.classify import Classifier
from genlab.search.tasks import Task
from genlab.search.ttc import arithmetic_check, best_of, likelihood, majority_vote, sample_chains


@dataclass
class MethodResult:
    name: str
    correct: int = 0
    items: int = 0
    tokens: int = 0           # prompt + completion tokens spent
    valid: int = 0            # items where the method produced an answer at all

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0

    @property
    def tokens_per_item(self) -> float:
        return self.tokens / self.items if self.items else 0.0


@dataclass
class BenchConfig:
    ks: tuple[int, ...] = (1, 3, 5, 10)
    best_of: int = 5
    temperature: float = 0.7
    max_tokens: int = 192
    limit: int | None = None
    seed: int = 0
    concurrency: int = 2


def _share(usage, n_used: int, n_total: int) -> int:
    # Chains of one call share its prompt tokens; each chain's share is prompt/n + its own completion.
    return round(usage.total_tokens * n_used / n_total)


def _item_fields(task: Task, item: dict) -> tuple[str, str]:
    if task.kind == "number":
        return item["question"], str(item["answer"])
    return item["text"], item["label"]


def run_item(model: Model, task: Task, item: dict, config: BenchConfig, index: int) -> dict[str, Any]:
    """Run every method on one item; return per-method (correct, tokens, answered)."""
    question, gold = _item_fields(task, item)
    out: dict[str, Any] = {}
    K = max(max(config.ks), config.best_of)
    if task.kind == "number":
        extract: Callable[[str], str | None] = cot.extract_number
        direct = model.chat(cot.direct(question), temperature=0, max_tokens=16)
        answer = extract(direct.text)
        out["direct"] = (answer == gold, direct.usage.total_tokens, answer is not None)
        messages = cot.few_shot_cot(question, task.worked)
        greedy = model.chat(messages, temperature=0, max_tokens=config.max_tokens)
        answer = extract(greedy.text)
        out["cot"] = (answer == gold, greedy.usage.total_tokens, answer is not None)
        verifiers = {"likelihood": likelihood, "arithmetic check": arithmetic_check}
    else:
        labels = task.labels
        direct_clf = Classifier(model, labels, examples=task.examples).classify(question)
        out["direct"] = (direct_clf.label == gold, direct_clf.usage.total_tokens, True)
        cot_clf = Classifier(model, labels, examples=task.examples, reasoning=True).classify(question)
        out["cot"] = (cot_clf.label == gold, cot_clf.usage.total_tokens, True)
        # Sampled chains: free reasoning that ends in a label, parsed from the text.
        messages = [{"role": "system", "content": "Classify the text into exactly one of these labels: "
                     + ", ".join(labels) + ". Think briefly, then end with \"The answer is LABEL.\""},
                    {"role": "user", "content": question}]

        def extract(text: str) -> str | None:
            return cot.extract_label(text, labels)
        verifiers = {"likelihood": likelihood}
    sampled = sample_chains(model, messages, K, extract, temperature=config.temperature,
                            max_tokens=config.max_tokens, seed=config.seed * 100_003 + index * 101, logprobs=True)
    for k in config.ks:
        vote = majority_vote(sampled.answers[:k])
        out[f"self-consistency@{k}"] = (vote.answer == gold, _share(sampled.usage, k, K), vote.answer is not None)
    n = config.best_of
    for name, verifier in verifiers.items():
        best = best_of(question, sampled.chains[:n], sampled.answers[:n], verifier)
        out[f"best-of-{n} ({name})"] = (best.answer == gold, _share(sampled.usage, n, K), best.answer is not None)
    return out


def run_bench(model: Model, task: Task, config: BenchConfig, progress: Callable[[int, int], None] | None = None
              ) -> list[MethodResult]:
    """Run the task's items and return one result per method, in a stable order."""
    if any(k < 1 for k in config.ks) or config.best_of < 1:
        raise ConfigError("k and N must be at least 1")
    items = task.items[: config.limit] if config.limit else task.items
    results: dict[str, MethodResult] = {}
    done = 0
    with ThreadPoolExecutor(max(1, config.concurrency)) as pool:
        futures = [pool.submit(run_item, model, task, item, config, i) for i, item in enumerate(items)]
        for future in futures:
            for name, (correct, tokens, answered) in future.result().items():
                result = results.setdefault(name, MethodResult(name))
                result.items += 1
                result.correct += int(correct)
                result.tokens += tokens
                result.valid += int(answered)
            done += 1
            if progress:
                progress(done, len(items))
    return list(results.values())


def plot(results_by_task: dict[str, list[MethodResult]], path: str, model: str) -> None:
    """Plot accuracy against tokens per item, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results_by_task), figsize=(6 * len(results_by_task), 4), dpi=110,
                             squeeze=False)
    for ax, (task, results) in zip(axes[0], results_by_task.items()):
        sc = [r for r in results if r.name.startswith("self-consistency")]
        ax.plot([r.tokens_per_item for r in sc], [r.accuracy for r in sc], "o-", label="self-consistency@k")
        for r in sc:
            ax.annotate(r.name.split("@")[1], (r.tokens_per_item, r.accuracy), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        for r in results:
            if not r.name.startswith("self-consistency"):
                ax.plot(r.tokens_per_item, r.accuracy, "s", label=r.name)
        ax.set_xscale("log")
        ax.set_xlabel("tokens per item")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{task} · {model}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

