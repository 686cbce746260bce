"""`genlab eval`: run suites, measure judges, view results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from genlab.cli.common import (BudgetUsdOpt, JsonOpt, app, err, labelled, note_busy_cores, on_ctrl_c, out,
                               progress_bars)
from genlab.errors import ConfigError

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate models: reference metrics and LLM autoraters.")
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
def run(suite_path: Path = typer.Argument(..., help="The suite YAML file."),
        output: Optional[Path] = typer.Option(None, "--out", help="Results directory (default evals/SUITE)."),
        concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Rows at once (default: the suite's)."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Call the models even for stored answers."),
        budget_usd: Optional[float] = BudgetUsdOpt,
        fail_under: Optional[float] = typer.Option(None, "--fail-under", min=0.0, max=1.0, help="Pass when at least this share of "
                                                   "rows passes (0-1; default: the suite's gate, else 1)."),
        compare_to: Optional[Path] = typer.Option(None, "--compare-to", help="An earlier run's --out directory: "
                                                  "report rows that passed there and fail now, and fail on them.")) -> None:
    """Run a suite and gate on its results; an interrupted run resumes.

    Writes results.jsonl, results.csv, results.xml (JUnit) and report.html. Exit code 0 when
    the gate holds, 100 when a row fails or errors (or the suite's gate, --fail-under or
    --compare-to is not met), 1 when the suite cannot run.

    Example: genlab eval run examples/eval/summaries.yaml --compare-to evals/last-release
    """
    from genlab.evaluate import gate
    from genlab.evaluate.report import metric_columns, usd, write_csv, write_html, write_junit, write_rows
    from genlab.evaluate.runner import RunOptions, SuiteRunner, row_status
    from genlab.evaluate.suite import load_suite

    suite = load_suite(suite_path)
    before = gate.previous_rows(compare_to) if compare_to is not None else None   # a wrong path fails first
    directory = output or Path("evals") / suite_path.stem
    runner = SuiteRunner(suite, RunOptions(directory, concurrency, not no_cache, budget_usd))
    note_busy_cores()
    with on_ctrl_c(lambda: f"interrupted; the {len(runner.store.done())} rows done are kept in {directory}, and "
                           "the same command runs the rest"), progress_bars() as progress:
        task = progress.add_task(suite_path.name, total=len(runner.rows()))
        summary = runner.run(lambda done, total: progress.update(task, completed=done, total=total))
    rows, pairs = runner.store.done(), runner.store.done("pairs")
    verdict = gate.check(suite, summary, rows, fail_under=fail_under, before=before)
    summary["gate"] = {"held": verdict.held, "failures": verdict.failures, "compared": verdict.compared,
                       "fixed": verdict.fixed, "regressions": [vars(r) for r in verdict.regressions]}
    prompts = len(suite.spec.prompts)
    write_rows(rows, directory / "results.jsonl")
    write_csv(rows, directory / "results.csv")
    write_junit(summary, rows, directory / "results.xml", prompts)
    write_html(summary, rows, pairs, directory / "report.html", prompts)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2))
    metrics = metric_columns(summary)
    table = Table("model", "rows", "pass rate", "failed", "errored", *metrics, "latency (s)", "tokens",
                  "judge tokens", "cost (USD)", "judge cost (USD)", "cache hits",
                  title=f"{suite_path.name}: {summary['rows']} rows")
    for m in summary["models"].values():
        table.add_row(m["label"], str(m["rows"]), f"{100 * m['pass_rate']:.0f} %", str(m["failed"]), str(m["errors"]),
                      *[f"{m['mean_scores'].get(k, float('nan')):.3f}" for k in metrics],
                      f"{m['mean_latency_s']:.2f}", str(m["tokens"]), str(m["judge_tokens"]), usd(m["cost_usd"]),
                      usd(m["judge_cost_usd"]), str(m["cache_hits"]))
    out.print(table)
    errored_rows = sorted((r for r in rows.values() if row_status(r) == "error"), key=lambda r: (r["test"], r["model"]))
    if errored_rows:   # why, without opening the report: a model that failed, a judge or a check that could not score
        first = errored_rows[0]
        reason = first.get("error") or next((a["error"] for a in first.get("assertions", []) if "error" in a), "")
        err.print(f"{len(errored_rows)} row(s) errored, e.g. test {first['test']} ({suite.label(first['model'])}): "
                  f"{reason[:200]} (every reason: {directory}/report.html)", style="yellow")
    for p in summary["pairwise"].values():
        low, high = p["win_rate_ci95"]
        errored = f", {p['errors']} errored" if p["errors"] else ""
        out.print(f"{p['label']} vs {suite.label(p['baseline'])}: {p['candidate']} wins, {p['baseline_wins']} losses, "
                  f"{p['tie']} ties{errored} · win rate {100 * p['win_rate']:.0f} % (95 % CI {100 * low:.0f}–"
                  f"{100 * high:.0f}) · position consistency {100 * p['position_consistency']:.0f} %")
        if note := position_note(p):
            out.print(note)
    if before is not None:
        out.print(f"against {compare_to}: {verdict.compared} rows compared, {len(verdict.regressions)} regressed, "
                  f"{verdict.fixed} fixed")
        for r in verdict.regressions:
            out.print(f"  regressed: test {r.test} ({suite.label(r.model)}) {r.before} → {r.now}: {r.reasons[0][:160]}")
    out.print(f"wrote {directory}/report.html, results.jsonl, results.csv, results.xml")
    if not verdict.held:
        for line in verdict.failures:
            err.print(labelled("gate failed:", "red", line))
        raise typer.Exit(gate.GATE_FAILED)
    out.print("gate held")


def position_note(pairwise: dict) -> str:
    """A line for a comparison whose judge went by position: its orders disagreed in more
    than half the rows (bench/eval_judge.py: the embedded judge, asked once, picks response
    A 9 times in 10)."""
    n, consistent = pairwise["n"], pairwise["consistent"]
    if not n or consistent / n >= 0.5:
        return ""
    return (f"  the judge's verdict changed with the order of the responses in {n - consistent} of {n} rows: it "
            "went by position more than content, so these wins say little; use a stronger judge (judge: {model: SPEC})")


@eval_app.command()
def judge(dataset: Path = typer.Argument(..., help="JSONL: pairwise {input, output_1, output_2, label} "
                                          "or pointwise {input, output, score}."),
          judge_model: str = typer.Option("local", "--judge", "-j", help="The judge's model spec."),
          metric: str = typer.Option("text_quality", "--metric", help="Built-in metric (pairwise_ prefix added "
                                     "for pairwise data)."),
          concurrency: int = typer.Option(2, "--concurrency", min=1, help="Judge calls at once."),
          as_json: bool = JsonOpt) -> None:
    """Measure a judge against human labels: accuracy over both orders, position consistency, ties."""
    from genlab.evaluate.builtin import pairwise_metric, pointwise_metric
    from genlab.evaluate.judge import evaluate_pairwise, evaluate_pointwise, read_dataset
    from genlab.models import get_model

    kind, rows = read_dataset(dataset)
    model = get_model(judge_model, source="eval-judge")
    with progress_bars() as progress:
        task = progress.add_task(dataset.name, total=len(rows))
        update = lambda done, total: progress.update(task, completed=done)  # noqa: E731
        if kind == "pairwise":
            report = evaluate_pairwise(model, pairwise_metric(metric), rows, concurrency, update)
        else:
            report = evaluate_pointwise(model, pointwise_metric(metric), rows, concurrency, update)
    if as_json:
        out.print_json(data=report)
        return
    if kind == "pairwise":
        out.print(f"judge {judge_model} on {report['rows']} pairs: accuracy {100 * report['accuracy']:.1f} % "
                  f"(both orders) · position consistency {100 * report['position_consistency']:.1f} % · "
                  f"ties {100 * report['tie_rate']:.1f} % · picks the first answer {100 * report['first_position_rate']:.1f} %")
        table = Table("subset", "rows", "accuracy")
        for name, s in report["subsets"].items():
            table.add_row(name, str(s["rows"]), f"{100 * s['accuracy']:.1f} %")
        out.print(table)
        out.print("verdicts over both orders (a pair judged one way in each order is a tie):")
        for cell, n in report["confusion"].items():
            out.print(f"  {cell}: {n}")
    else:
        def rho(value: float | None) -> str:
            return "—" if value is None else f"{value:.2f}"

        out.print(f"judge {judge_model} on {report['rows']} rows ({report['metric']}): Spearman "
                  f"{rho(report['spearman'])} · Kendall {rho(report['kendall'])} {report['note']}".rstrip())


@eval_app.command()
def view(directory: Path = typer.Argument(Path("evals"), help="A results directory (or the parent of several)."),
         port: int = typer.Option(8765, "--port", min=0, max=65535, help="0: any free port (printed).")) -> None:
    """Serve past reports read-only on http://127.0.0.1:PORT (Ctrl-C stops)."""
    import http.server

    from genlab.evaluate.report import report_handler, report_pages
    from genlab.machine import listen_socket

    if not directory.is_dir():
        raise ConfigError(f"no results directory {directory}; run: genlab eval run SUITE.yaml")
    handler = report_handler(directory)
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler, bind_and_activate=False) as server:
        server.socket.close()
        server.socket = listen_socket("127.0.0.1", port)      # a port in use: one line naming the fix
        port = server.socket.getsockname()[1]
        err.print(f"serving {directory} at http://127.0.0.1:{port}/ (Ctrl-C stops)")
        for report in report_pages(directory):
            err.print(f"  http://127.0.0.1:{port}/{report}")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
