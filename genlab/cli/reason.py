"""`genlab classify` and `genlab ttc`: enum mode, chain of thought, test-time compute."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from genlab.cli.common import PLOT_SUFFIXES, ModelOpt, app, note_busy_cores, out, output_file, progress_bars
from genlab.errors import ConfigError
from genlab.io import read_text


def _read_labels(labels: str) -> list[str]:
    path = Path(labels)
    if path.is_file():
        text = read_text(path)
        return [line for line in text.splitlines() if line.strip()]
    return labels.split(",")


def _open_lines(source: str):
    if source == "-":
        if sys.stdin.isatty():
            raise ConfigError("no input on stdin; pipe JSONL or text lines in, or give a file")
        return sys.stdin.read().splitlines(), "stdin"
    return read_text(source).splitlines(), source


@app.command()
def classify(
    source: str = typer.Argument("-", help="JSONL file (or - for stdin): rows with a text field, or plain lines."),
    labels: str = typer.Option(..., "--labels", "-l", help="Comma-separated labels, or a file with one per line."),
    model: str = ModelOpt,
    examples: Optional[Path] = typer.Option(None, "--examples", help="Few-shot JSONL: {\"text\", \"label\"} rows."),
    cot: bool = typer.Option(False, "--cot", help="Reason first (free text), then answer with the label."),
    method: str = typer.Option("enum", "--method", help="enum (constrained) or free (free text, parsed)."),
    field_name: str = typer.Option("text", "--field", help="Which JSON field holds the text."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Texts classified at once."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Call the model even for texts it has labelled "
                                  "(by default a re-run, e.g. after an interruption, pays only for new texts)."),
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
                            method=method, cache=not no_cache)
    for row, result in zip(rows, classifier.classify_many((r[field_name] for r in rows), concurrency)):
        output = {**row, "label": result.label}
        if cot:
            output["reasoning"] = result.reasoning
        if method == "free":
            output["raw"] = result.raw
        output["usage"] = {"prompt_tokens": result.usage.prompt_tokens, "cached_tokens": result.usage.cached_tokens,
                           "completion_tokens": result.usage.completion_tokens, "cost_usd": result.cost_usd,
                           "cache_hit": result.cache_hit}
        sys.stdout.write(json.dumps(output) + "\n")
        sys.stdout.flush()


ttc_app = typer.Typer(no_args_is_help=True, help="Test-time compute: accuracy against tokens spent.")
app.add_typer(ttc_app, name="ttc")


@ttc_app.command()
def bench(
    tasks: list[str] = typer.Argument(..., help="arith-1, arith-2, arith-3, arithmetic, topics (one or more)."),
    model: str = ModelOpt,
    ks: str = typer.Option("1,2,4,8,16", "--ks", help="Sample counts k for self-consistency, best-of-k and pass@k."),
    split: str = typer.Option("test", "--split", help="test (held-out items), dev (for choosing settings) or all."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N items of each task."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, help="Of the k sampled chains (the greedy "
                                      "chain of thought and the direct answer use 0)."),
    max_tokens: int = typer.Option(128, "--max-tokens", min=1, help="Tokens per chain."),
    chain_grammar: bool = typer.Option(True, "--chain-grammar/--no-chain-grammar",
                                       help="End each label chain on a label by grammar (where the model takes one)."),
    records: Optional[Path] = typer.Option(None, "--records", help="Folder for one JSONL of records per task; "
                                           "a run started again with the same settings resumes from it."),
    autorater_spec: Optional[str] = typer.Option(None, "--autorater", metavar="MODEL",
                                                 help="Also pick best-of-k by this judge's rating of each chain "
                                                      "(question_answering_quality, no reference)."),
    reward_model: Optional[Path] = typer.Option(None, "--reward-model", metavar="DIR",
                                                help="Also pick best-of-k by this reward model "
                                                     "(a folder from genlab tune reward)."),
    verify_chains: Optional[int] = typer.Option(None, "--verify-chains", min=1, help="How many of each item's "
                                                "chains --autorater and --reward-model score (default: all)."),
    plot_path: Optional[Path] = typer.Option(None, "--plot", help="Write accuracy vs tokens (.png, .svg or .pdf)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write every curve point as JSON."),
) -> None:
    """Accuracy against tokens per item: direct, chain of thought, self-consistency@k, best-of-k and pass@k.

    Every method sends the task's one prompt; they differ only in sampling and selection.
    Accuracy carries its 95 % Wilson interval. A verifier that runs a model (--autorater,
    --reward-model) scores the chains after they are sampled; its own calls are not in the
    tokens per item.

      genlab ttc bench arith-1 arith-2 --limit 100 --plot ttc.png

      genlab ttc bench arith-1 --limit 50 --reward-model runs/rm --autorater local --verify-chains 4
    """
    from genlab.models import get_model
    from genlab.search.tasks import load_task
    from genlab.search.ttc import autorater
    from genlab.search.ttc_bench import BenchConfig, chain_stats, curves, plot, run_task, score_chains

    k_values = tuple(sorted(set(_numbers(ks, int, "--ks"))))
    config = BenchConfig(ks=k_values, temperature=temperature, max_tokens=max_tokens, limit=limit,
                         chain_grammar=chain_grammar)
    loaded = [load_task(name, split) for name in tasks]  # every name checked before any model work
    verifiers = {}  # name -> (verifier, what made its scores)
    if reward_model is not None:
        from genlab.train.reward import reward_verifier

        verify = reward_verifier(reward_model)  # refuses a folder without a reward model
        # The folder and when it was written: scores kept in --records are reused only for the same model.
        made_by = {"reward_model": str(reward_model.resolve()), "written": (reward_model / "config.json").stat().st_mtime}
        verifiers["reward model"] = (verify, made_by)
    judge = get_model(autorater_spec, source="ttc") if autorater_spec not in (None, model) else None
    llm = get_model(model, source="ttc")
    if autorater_spec is not None:
        verifiers["autorater"] = (autorater(judge or llm), {"autorater": autorater_spec})
    plot_path, json_path = output_file(plot_path, "--plot", *PLOT_SUFFIXES), output_file(json_path, "--json", ".json")
    everything, stats = {}, {}
    note_busy_cores()
    for task in loaded:
        with progress_bars() as progress:
            bar = progress.add_task(task.name, total=None)
            done = run_task(llm, task, config, records=records / f"{task.name}-{split}.jsonl" if records else None,
                            progress=lambda n, total: progress.update(bar, completed=n, total=total))
            scores = {}
            for name, (verifier, made_by) in verifiers.items():
                progress.update(bar, description=f"{task.name}: {name}", completed=0)
                path = records / f"{task.name}-{split}.{name.replace(' ', '-')}.jsonl" if records else None
                scores[name] = score_chains(done, verifier, chains=verify_chains, path=path, settings=made_by,
                                            progress=lambda n, total: progress.update(bar, completed=n, total=total))
        rows = everything[task.name] = curves(done, k_values, scores)
        stats[task.name] = chain_stats(done)
        table = Table("method", "k", "accuracy (95 % CI)", "answered", "tokens / item",
                      title=f"{task.name} · {model} · {len(done)} {split} items")
        for r in rows:
            table.add_row(r["method"], str(r["k"] or ""), f"{100 * r['accuracy']:.1f} % "
                          f"({100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f})", f"{r['answered']}/{r['items']}",
                          f"{r['tokens_per_item']:.0f}")
        out.print(table)
    if plot_path:
        plot(everything, str(plot_path), model)
        out.print(f"wrote {plot_path}")
    if json_path:
        json_path.write_text(json.dumps({"model": model, "split": split, "config": vars(config) | {"ks": k_values},
                                         "verifiers": {name: made_by for name, (_, made_by) in verifiers.items()},
                                         "tasks": everything, "chains": stats}, indent=1))
        out.print(f"wrote {json_path}")


def _numbers(text: str, kind: type, option: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        noun = "integers" if kind is int else "numbers"
        raise ConfigError(f"{option} must be comma-separated {noun}, got {text!r}") from None


@ttc_app.command()
def variance(
    task_name: str = typer.Argument(..., metavar="TASK", help="arith-1, arith-2, arith-3, arithmetic or topics."),
    model: str = ModelOpt,
    temperatures: str = typer.Option("0.3,0.7,1.0,1.5", "--temperatures", help="Comma-separated temperatures."),
    top_ps: str = typer.Option("0.5,0.9,1.0", "--top-p", help="Comma-separated top-p values."),
    top_ks: str = typer.Option("0,10", "--top-k", help="Comma-separated top-k values; 0 leaves top-k unset "
                               "(give 0 alone for models without top-k)."),
    samples: int = typer.Option(8, "--samples", help="Samples per item and setting."),
    split: str = typer.Option("test", "--split", help="test, dev or all."),
    limit: Optional[int] = typer.Option(30, "--limit", min=1, help="Items of the task to sample."),
    plot_path: Optional[Path] = typer.Option(None, "--plot", help="Write the grid as a plot (.png, .svg or .pdf)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the grid as JSON."),
) -> None:
    """How temperature, top-p and top-k change the answers: distinct answers per item and accuracy.

    The task's one prompt is sampled --samples times per item at every setting of the grid:

      genlab ttc variance topics --limit 30 --plot variance.png
    """
    from genlab.models import get_model
    from genlab.search.tasks import load_task
    from genlab.search.ttc_bench import Grid, plot_variance, variance as sweep

    grid = Grid(_numbers(temperatures, float, "--temperatures"), _numbers(top_ps, float, "--top-p"),
                _numbers(top_ks, int, "--top-k"), samples)
    task = load_task(task_name, split)
    llm = get_model(model, source="ttc")
    if any(grid.top_ks) and not llm.backend.supports_top_k:
        raise ConfigError(f"{model} does not take top-k; give --top-k 0")
    plot_path, json_path = output_file(plot_path, "--plot", *PLOT_SUFFIXES), output_file(json_path, "--json", ".json")
    note_busy_cores()
    with progress_bars() as progress:
        bar = progress.add_task(f"{task.name} grid", total=None)
        rows = sweep(llm, task, grid, limit=limit, progress=lambda n, total: progress.update(bar, completed=n, total=total))
    table = Table("temperature", "top-p", "top-k", "distinct answers / item", "items disagreeing", "one sample",
                  f"pass@{samples}", f"self-consistency@{samples}",
                  title=f"{task.name} · {model} · {rows[0]['items']} {split} items x {samples} samples")
    for r in rows:
        table.add_row(f"{r['temperature']:g}", f"{r['top_p']:g}", str(r["top_k"] or "-"), f"{r['distinct_answers']:.2f}",
                      f"{100 * r['items_disagreeing']:.0f} %", f"{100 * r['sample_accuracy']:.1f} %",
                      f"{100 * r['pass_at_samples']:.1f} %", f"{100 * r['self_consistency']:.1f} %")
    out.print(table)
    if plot_path:
        plot_variance(rows, str(plot_path), f"{task.name} · {model}")
        out.print(f"wrote {plot_path}")
    if json_path:
        json_path.write_text(json.dumps({"model": model, "task": task.name, "split": split, "grid": rows}, indent=1))
        out.print(f"wrote {json_path}")
