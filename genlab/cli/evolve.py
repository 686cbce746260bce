"""`genlab evolve`: FunSearch program search, and reading its runs back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from genlab.cli.common import JsonOpt, ModelOpt, app, err, labelled, note_busy_cores, on_ctrl_c, out, output_file
from genlab.errors import ConfigError
from genlab.io import writable_folder
from genlab.search.funsearch.config import RESUME_MAY_CHANGE, EvolveConfig
from genlab.search.funsearch.database import DatabaseConfig
from genlab.search.funsearch.tune import SIGMA as TUNE_SIGMA, VARIANTS as TUNE_VARIANTS

#: The defaults of a run live on EvolveConfig (its class attributes); the flags read them.
DEFAULTS = EvolveConfig
UnsafeSandboxOpt = typer.Option(False, "--unsafe-sandbox", help="Run programs even where the sandbox cannot "
                                "fully isolate them (it says what is missing first).")


class _RunIsDefault(TyperGroup):
    """`genlab evolve SPEC …` means `genlab evolve run SPEC …`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


evolve_app = typer.Typer(cls=_RunIsDefault, no_args_is_help=True, help=(
    "FunSearch: a model proposes programs, a sandbox scores them, the best come back in prompts.\n\n"
    "genlab evolve SPEC [options] starts a run (SPEC: bin-packing, cap-set, or a file)."))
app.add_typer(evolve_app, name="evolve")


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _say_unsafe(missing: list[str], what: str) -> str:
    """Say, before the first program runs, what the sandbox lacks here (the user accepted
    it with --unsafe-sandbox); the missing protections joined, or '' where none is."""
    unsafe = "; ".join(missing)
    if unsafe:
        err.print(f"unsafe sandbox (--unsafe-sandbox): {what} run without {unsafe}", style="bold red")
    return unsafe


def _check_sandbox(unsafe_sandbox: bool) -> None:
    """Refuse where the sandbox cannot isolate programs, unless accepted; then say what is
    missing. The evaluator checks again, from the same probe (it runs once per process)."""
    from genlab.search.funsearch.sandbox import Sandbox, require_isolation

    _say_unsafe(require_isolation(Sandbox(), unsafe_sandbox), "programs")


def _progress_table(progress, run_dir: Path, sampling: str = "", unsafe: str = "") -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("run", str(run_dir))
    if unsafe:
        table.add_row("sandbox", Text(f"UNSAFE: missing {unsafe}", style="bold red"))
    if sampling:
        table.add_row("sampling", sampling)
    from genlab.search.funsearch.report import drawn

    table.add_row("samples", f"{drawn(progress.samples, progress.target)}  ({progress.pending} being evaluated)")
    table.add_row("valid", f"{progress.valid} of {progress.evaluated} done ({progress.valid_pct:.1f} %)")
    table.add_row("best score", f"{_fmt(progress.best)}  (seed {_fmt(progress.seed_score)})")
    if progress.tuned:
        table.add_row("tuned", f"{progress.tuned} programs registered with tuned literals")
    table.add_row("speed", f"{progress.samples_per_s:.2f} samples/s · {progress.elapsed:.0f} s")
    table.add_row("tokens", f"{progress.prompt_tokens} prompt · {progress.completion_tokens} completion · "
                  f"${progress.cost_usd:.4f}")
    return table


@evolve_app.command("run")
def run(
    ctx: typer.Context,
    spec: Optional[str] = typer.Argument(None, help="bin-packing, cap-set, or a spec file."),
    model: str = ModelOpt,
    samples: Optional[int] = typer.Option(None, "--samples", "-n", help=f"Samples to draw in total (default {DEFAULTS.samples}, "
                                          "or as many as --max-minutes allows; with --resume, the run's new target)."),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="Stop drawing once the run has spent this much "
                                               "(with --resume: in all, counting what it spent before)."),
    workers: int = typer.Option(DEFAULTS.workers, "--workers", help="Model calls in flight at once."),
    eval_workers: Optional[int] = typer.Option(None, "--eval-workers", help="Sandboxed evaluations at once "
                                               "(default: one per core)."),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Seeds the database's choices."),
    islands: int = typer.Option(DatabaseConfig.num_islands, "--islands", help="Islands of the programs database; "
                                "each evolves apart from the others, so fewer go more generations deep in a short run."),
    seed_program: Optional[str] = typer.Option(None, "--seed-program", help="Start from one of the spec's "
                                               "baselines instead of its own seed (bin-packing: first-fit, best-fit)."),
    seed_model: bool = typer.Option(DEFAULTS.seed_model, "--seed-model", help="Also seed every model call: reproducible "
                                    "samples on the embedded model, one call at a time and without its prompt cache, so "
                                    "every sample reads the whole prompt again (about 1.6 s more per sample on 2 cores)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where the run is stored "
                                           "(default: runs/SPEC-TIME)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop drawing after this long."),
    max_tokens: int = typer.Option(DEFAULTS.max_tokens, "--max-tokens", help="Tokens per sample."),
    mode: str = typer.Option(DEFAULTS.mode, "--mode", help="completion, chat, or auto (completion on the embedded model)."),
    constrain: Optional[bool] = typer.Option(None, "--constrain/--no-constrain", help="Sample the function body "
                                             "under a grammar built from the spec, so every sample parses "
                                             "(default: on where the model takes grammars, as the embedded one does)."),
    tune_variants: int = typer.Option(DEFAULTS.tune_variants, "--tune-variants", min=0, help="After a sample that "
                                      "scores at least the seed and behaves in a new way, tune its numeric literals "
                                      "with this many variants on the training inputs and register the best "
                                      "(as genlab evolve tune does; 0: off)."),
    timeout: float = typer.Option(DEFAULTS.timeout_s, "--timeout", help="Seconds per program, all inputs."),
    memory_mb: int = typer.Option(DEFAULTS.memory_mb, "--memory-mb", help="Address-space limit per program."),
    backend: str = typer.Option(DEFAULTS.backend, "--backend", help="local (processes) or ray."),
    unsafe_sandbox: bool = UnsafeSandboxOpt,
) -> None:
    """Evolve the spec's function.

    Examples:

      genlab evolve bin-packing --samples 400

      genlab evolve bin-packing -m gemini:gemini-2.5-flash --budget-usd 1 --workers 4

      genlab evolve --resume runs/bin-packing-20261126-150000
    """
    from genlab.search.funsearch.runner import Run

    if resume is not None:
        given = {param.name: param for param in ctx.command.params
                 if getattr(ctx.get_parameter_source(param.name), "name", "") == "COMMANDLINE"}
        kept = [param.opts[0] if param.param_type_name == "option" else param.name.upper()
                for name, param in given.items() if name not in ("resume", "unsafe_sandbox", *RESUME_MAY_CHANGE)]
        if kept:
            raise ConfigError(f"--resume continues a run with the settings it started with, so {', '.join(kept)} cannot "
                              "change it; drop them, or start a new run (a resumed run takes --samples, --max-minutes, "
                              "--budget-usd, --workers and --eval-workers)")
        the_run = Run.resume(resume, unsafe_sandbox=unsafe_sandbox,
                             **{name: ctx.params[name] for name in RESUME_MAY_CHANGE if name in given})
        directory = resume
    else:
        if spec is None:
            raise ConfigError("give a spec (bin-packing, cap-set, or a spec file) or --resume RUN_DIR")
        options = {"eval_workers": eval_workers} if eval_workers is not None else {}
        if samples is None and max_minutes is None:
            samples = DEFAULTS.samples                  # with --max-minutes alone, time ends the run
        config = EvolveConfig(spec=spec, model=model, samples=samples,
                              budget_usd=budget_usd, workers=workers,
                              seed=seed, seed_model=seed_model, max_minutes=max_minutes, max_tokens=max_tokens, mode=mode,
                              constrain=constrain, seed_program=seed_program, tune_variants=tune_variants,
                              timeout_s=timeout, memory_mb=memory_mb, backend=backend,
                              database=DatabaseConfig(num_islands=islands), **options)
        name = Path(spec).stem if spec.endswith(".py") else spec
        directory = run_dir or Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        the_run = Run.start(config, directory, unsafe_sandbox=unsafe_sandbox)
    note_busy_cores()
    err.print(labelled("genlab evolve", "bold", f"{the_run.spec.name} with {the_run.config.model} → {directory}"))
    if the_run.sampling_notice:
        err.print(the_run.sampling_notice)
    unsafe = _say_unsafe(the_run.sandbox_missing, "candidates")
    sampling = "constrained (grammar from the spec)" if the_run.constrained else "free"
    last = [0.0]
    try:
        with Live(_progress_table(the_run.progress, directory, sampling, unsafe), console=err,
                  refresh_per_second=4, transient=False) as live:
            def show(progress) -> None:
                if time.monotonic() - last[0] > 0.25:
                    last[0] = time.monotonic()
                    live.update(_progress_table(progress, directory, sampling, unsafe))
            with on_ctrl_c(lambda: f"interrupted; continue with: genlab evolve --resume {directory}"):
                progress = the_run.execute(show)
            live.update(_progress_table(progress, directory, sampling, unsafe))
    finally:
        if not err.is_terminal:
            err.print()  # Live leaves its last line open when it cannot redraw; an error goes below it
    if the_run.protections:
        err.print(f"sandbox: {'; '.join(the_run.protections)}", style="dim")
    if progress.failed:   # a script (or make run) must see it: exit 1, and say how to go on
        err.print(f"stopped: {progress.stopped_because}. Nothing is lost; once that is fixed, continue with: "
                  f"genlab evolve --resume {directory}", style="bold red")
        raise typer.Exit(1)
    err.print(f"stopped: {progress.stopped_because}. Best program: genlab evolve best {directory}")


@evolve_app.command()
def show(run_dir: Path = typer.Argument(..., help="A run directory."),
         as_json: bool = JsonOpt) -> None:
    """Summarise a run: counts, best score, outcomes, top programs."""
    from genlab.search.funsearch.report import drawn, open_run, summary

    store, _ = open_run(run_dir)
    info = summary(store)
    if as_json:
        out.print_json(data=info)
        return
    out.print(labelled(info["spec"], "bold", f"· {info['model']} · {info['run_dir']}"))
    out.print(f"samples {drawn(info['samples'], info['target'])} · evaluated {info['evaluated'] or 0} · "
              f"valid {info['valid'] or 0} · pending {info['pending'] or 0}")
    out.print(f"best score {_fmt(info['best'])} (seed {_fmt(info['seed_score'])}) · "
              f"{info['prompt_tokens'] or 0} prompt + {info['completion_tokens'] or 0} completion tokens · "
              f"${info['cost_usd'] or 0:.4f}")
    if info["tuned"]:
        out.print(f"tuned: {info['tuned']} programs registered with tuned literals (genlab evolve tune)")
    for mode, n in info["sampling"].items():
        pct = 100.0 * n["valid"] / n["done"] if n["done"] else 0.0
        out.print(f"{mode} sampling: {n['samples']} samples, {n['valid']} valid of {n['done']} done ({pct:.1f} %)")
    table = Table("outcome", "samples")
    for kind, n in info["outcomes"].items():
        table.add_row(kind, str(n))
    out.print(table)
    top = Table("sample", "prompt", "island", "score", "chars", title="top programs")
    for row in info["top"]:
        origin = row["prompt_id"] if row["prompt_id"] is not None else \
            f"tuned from {row['tuned_from']}" if row["tuned_from"] is not None else "seed"
        top.add_row(str(row["id"]), str(origin),
                    str(row["island"] if row["island"] is not None else "all"), _fmt(row["score"]), str(row["chars"]))
    out.print(top)


@evolve_app.command()
def best(run_dir: Path = typer.Argument(..., help="A run directory.")) -> None:
    """Print the best program of a run (its score goes to stderr)."""
    from genlab.search.funsearch.report import against_seed, best_sample, open_run

    store, _ = open_run(run_dir)
    sample = best_sample(store)
    out.out(sample["code"].rstrip())
    err.print(f"sample {sample['id']} · score {sample['score']} · {against_seed(store, sample)}", style="dim")


@evolve_app.command()
def report(run_dir: Path = typer.Argument(..., help="A run directory."),
           output: Optional[Path] = typer.Option(None, "--out", help="Markdown file (default RUN/report.md)."),
           no_test: bool = typer.Option(False, "--no-test", help="Skip scoring the best program on held-out sets."),
           unsafe_sandbox: bool = UnsafeSandboxOpt) -> None:
    """Write a Markdown report: best score vs samples (PNG), the best program and its diff to its parent."""
    from genlab.search.funsearch.report import write_report

    writable_folder((output or run_dir / "report.md").parent, "--out")
    output_file(output, "--out", ".md", beside=(".png",))
    if not no_test:
        _check_sandbox(unsafe_sandbox)
    path = write_report(run_dir, output, test=not no_test, unsafe_sandbox=unsafe_sandbox)
    out.print(f"wrote {path} and {path.with_suffix('.png')}")


@evolve_app.command()
def score(spec: str = typer.Argument(..., help="Spec name or file."),
          program: Path = typer.Argument(..., help="A .py file with the evolved function."),
          as_json: bool = JsonOpt,
          unsafe_sandbox: bool = UnsafeSandboxOpt) -> None:
    """Score a program on the spec's training inputs and held-out sets, in the sandbox."""
    from genlab.search.funsearch.report import read_program, score_program
    from genlab.search.funsearch.spec import load_spec

    the_spec = load_spec(spec)
    code = read_program(the_spec, program)
    _check_sandbox(unsafe_sandbox)
    results = score_program(the_spec, code, unsafe_sandbox=unsafe_sandbox)
    if as_json:
        out.print_json(data=results)
        return
    table = Table("dataset", "inputs scored", "mean score", "metric", "first error")
    for name, row in results.items():
        metric = f"{row['metric']['name']} = {row['metric']['value']:.2f}" if "metric" in row else "—"
        first = next(iter(row["errors"].values()), "")
        table.add_row(name, f"{row['scored']}/{row['inputs']}", _fmt(row["score"]), metric, first[:60])
    out.print(table)


@evolve_app.command()
def tune(spec: str = typer.Argument(..., help="Spec name or file."),
         program: Path = typer.Argument(..., help="A .py file with the evolved function (e.g. from "
                                        "genlab evolve best RUN > best.py)."),
         variants: int = typer.Option(TUNE_VARIANTS, "--variants", min=1, help="Variants to score on the training inputs."),
         sigma: float = typer.Option(TUNE_SIGMA, "--sigma", min=0.0, help="Each literal is multiplied by "
                                     "exp(N(0, sigma))."),
         seed: int = typer.Option(0, "--seed", help="Seeds the variants' draws."),
         unsafe_sandbox: bool = UnsafeSandboxOpt) -> None:
    """Tune a program's numeric literals on the spec's training inputs, in the sandbox, and print
    the best variant (its training score goes to stderr; held-out sets are not read)."""
    from genlab.search.funsearch.evaluator import Evaluator
    from genlab.search.funsearch.report import read_program
    from genlab.search.funsearch.spec import load_spec
    from genlab.search.funsearch.tune import tune_constants

    the_spec = load_spec(spec)
    code = read_program(the_spec, program)
    _check_sandbox(unsafe_sandbox)
    evaluator = Evaluator(the_spec, unsafe_sandbox=unsafe_sandbox)
    with err.status(f"scoring {variants} variants on {len(evaluator.inputs)} training inputs") as status:
        tuned = tune_constants(code, evaluator, variants, sigma, seed,
                               on_variant=lambda i, best: status.update(
                                   f"variant {i} of {variants} · best training score {_fmt(best)}"))
    out.out(tuned.code.rstrip())
    if not tuned.literals:
        err.print(f"{program} has no numeric literal to tune; printed as it is", style="dim")
    elif tuned.code == code:
        err.print(f"no variant of {tuned.literals} literals beat the program's training score "
                  f"{_fmt(tuned.seed_score)}; printed as it is", style="dim")
    else:
        err.print(f"training score {_fmt(tuned.seed_score)} → {_fmt(tuned.score)} ({tuned.variants} variants of "
                  f"{tuned.literals} literals); held out: genlab evolve score {spec} FILE", style="dim")


@evolve_app.command()
def baselines(spec: str = typer.Argument("bin-packing", help="Spec name or file."),
              run_dir: Optional[Path] = typer.Option(None, "--run", help="Add this run's best program."),
              as_json: bool = JsonOpt,
              unsafe_sandbox: bool = UnsafeSandboxOpt) -> None:
    """Print the spec's baselines on its held-out sets (bin packing: First Fit, Best Fit, the paper)."""
    from genlab.search.funsearch.report import baselines as compute, best_sample, open_run
    from genlab.search.funsearch.spec import load_spec

    the_spec = load_spec(spec)
    extra = {}
    sample = None
    if run_dir is not None:
        store, _ = open_run(run_dir)
        sample = best_sample(store)
        extra[f"this run's best (sample {sample['id']})"] = sample["code"]
    _check_sandbox(unsafe_sandbox)
    rows = compute(the_spec, extra, unsafe_sandbox=unsafe_sandbox)
    if as_json:
        out.print_json(data=rows)
        return
    datasets = list(the_spec.test_inputs())
    metric_name = "score"
    table = Table("", *datasets)
    for row in rows:
        if "published" in row:
            table.add_row(row["name"], *[f"{row['published'].get(d, float('nan')):.2f}" for d in datasets])
            continue
        cells = []
        for d in datasets:
            result = row["results"][d]
            if "metric" in result:
                metric_name = result["metric"]["name"]
                cells.append(f"{result['metric']['value']:.2f}")
            else:
                cells.append(_fmt(result["score"], 2))
        table.add_row(row["name"], *cells)
    table.title = f"{the_spec.name}: {metric_name} on held-out sets (lower is better)" if metric_name != "score" \
        else f"{the_spec.name}: mean score on held-out sets"
    out.print(table)
    if sample is not None:
        out.print()
        out.print(labelled("The run's best program", "bold", f"(sample {sample['id']}, training score {sample['score']}):\n"))
        out.out(sample["code"].rstrip(), highlight=False)
        report = Path(run_dir) / "report.md"
        where = (f"{report} (best score against samples: {report.with_suffix('.png')})" if report.exists()
                 else f"genlab evolve report {run_dir}")
        out.print(f"\nReport: {where}")
