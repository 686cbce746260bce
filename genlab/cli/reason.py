"""`genlab classify` and `genlab ttc`: enum mode, chain of thought, test-time compute."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from genlab.cli.common import ModelOpt, app, err, out
from genlab.errors import ConfigError


def _read_labels(labels: str) -> list[str]:
    path = Path(labels)
    if path.is_file():
        text = path.read_text()
        return [line for line in text.splitlines() if line.strip()]
    return labels.split(",")


def _open_lines(source: str):
    if source == "-":
        if sys.stdin.isatty():
            raise ConfigError("no input on stdin; pipe JSONL or text lines in, or give a file")
        return sys.stdin.read().splitlines(), "stdin"
    try:
        return Path(source).read_text().splitlines(), source
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from None


@app.command()
def classify(
    source: str = typer.Argument("-", help="JSONL file (or - for stdin): rows with a text field, or plain lines."),
    labels: str = typer.Option(..., "--labels", "-l", help="Comma-separated labels, or a file with one per line."),
    model: str = ModelOpt,
    examples: Optional[Path] = typer.Option(None, "--examples", help="Few-shot JSONL: {\"text\", \"label\"} rows."),
    cot: bool = typer.Option(False, "--cot", help="Reason first (free text), then answer with the label."),
    method: str = typer.Option("enum", "--method", help="enum (constrained) or free (free text, parsed)."),
    field_name: str = typer.Option("text", "--field", help="Which JSON field holds the text."),
    concurrency: int = typer.Option(4, "--concurrency", help="Texts classified at once."),
) -> None:
    """Label each input with exactly one of the labels; JSONL out, in input order.

    Other input fields are carried through, so a gold label can be compared later:

      genlab classify --labels positive,negative,neutral reviews.jsonl > labelled.jsonl

      echo "The match went to penalties" | genlab classify -l sports,weather,food
    """
    from genlab.models import get_model
    from genlab.search.classify import Classifier, check_labels, read_examples, read_rows

    label_list = check_labels(_read_labels(labels))
    lines, name = _open_lines(source)
    rows = read_rows(lines, field_name, name)
    few_shot = []
    if examples is not None:
        few_shot = read_examples(examples)
    classifier = Classifier(get_model(model, source="classify"), label_list, examples=few_shot, reasoning=cot,
                            method=method)
    for row, result in zip(rows, classifier.classify_many((r[field_name] for r in rows), concurrency)):
        output = {**row, "label": result.label}
        if cot:
            output["reasoning"] = result.reasoning
        if method == "free":
            output["raw"] = result.raw
        output["usage"] = {"prompt_tokens": result.usage.prompt_tokens, "cached_tokens": result.usage.cached_tokens,
                           "completion_tokens": result.usage.completion_tokens, "cost_usd": result.cost_usd}
        sys.stdout.write(json.dumps(output) + "\n")
        sys.stdout.flush()


ttc_app = typer.Typer(no_args_is_help=True, help="Test-time compute: accuracy against tokens spent.")
app.add_typer(ttc_app, name="ttc")


@ttc_app.command()
def bench(
    tasks: list[str] = typer.Argument(..., help="arithmetic, topics (one or both)."),
    model: str = ModelOpt,
    ks: str = typer.Option("1,3,5,10", "--ks", help="Self-consistency sample counts."),
    best_of: int = typer.Option(5, "--best-of", help="N for best-of-N."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N items of each task."),
    temperature: float = typer.Option(0.7, "--temperature"),
    max_tokens: int = typer.Option(192, "--max-tokens"),
    seed: int = typer.Option(0, "--seed"),
    plot_path: Optional[Path] = typer.Option(None, "--plot", help="Write accuracy vs tokens as a PNG."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
) -> None:
    """Run direct, CoT, self-consistency@k and best-of-N on shipped tasks; print accuracy vs tokens."""
    from genlab.models import get_model
    from genlab.search.tasks import load_task
    from genlab.search.ttc_bench import BenchConfig, plot, run_bench

    try:
        k_values = tuple(int(k) for k in ks.split(","))
    except ValueError:
        raise ConfigError(f"--ks must be comma-separated integers, got {ks!r}") from None
    if any(k < 1 for k in k_values) or best_of < 1:
        raise ConfigError("k and --best-of must be at least 1")
    config = BenchConfig(ks=k_values, best_of=best_of, temperature=temperature, max_tokens=max_tokens,
                         limit=limit, seed=seed)
    llm = get_model(model, source="ttc")
    all_results = {}
    for task_name in tasks:
        task = load_task(task_name)
        with Progress(TextColumn(f"{task_name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            bar = progress.add_task(task_name, total=min(limit or len(task.items), len(task.items)))
            results = run_bench(llm, task, config, lambda done, total: progress.update(bar, completed=done))
        all_results[task_name] = results
        table = Table("method", "accuracy", "answered", "tokens / item", title=f"{task_name} · {model} "
                      f"({results[0].items} items)")
        for r in results:
            table.add_row(r.name, f"{100 * r.accuracy:.1f} %", f"{r.valid}/{r.items}", f"{r.tokens_per_item:.0f}")
        out.print(table)
    if plot_path:
        plot(all_results, str(plot_path), model)
        out.print(f"wrote {plot_path}")
    if json_path:
        json_path.write_text(json.dumps({t: [{**vars(r), "accuracy": r.accuracy, "tokens_per_item": r.tokens_per_item}
                                            for r in rs] for t, rs in all_results.items()}, indent=2))
        out.print(f"wrote {json_path}")
