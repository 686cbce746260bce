"""What every `genlab` sub-command shares: the app, the two consoles, common options."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from genlab.models.registry import BUILTIN

# Help is Markdown, which joins a paragraph's lines; typer's "rich" mode keeps the docstrings'
# line breaks (ragged at 80 columns) and takes "[options]" for a markup tag and drops it.
# Sub-apps inherit the root's mode.
app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown", add_completion=False,
                  pretty_exceptions_enable=False, help="genlab: LLM engineering techniques on any model, offline by default.")
# Tables stay readable when output goes to a file or pipe (rich would assume 80 columns).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ModelOpt = typer.Option("local", "--model", "-m", help="Model spec: " + ", ".join(e.usage for e in BUILTIN if e.kind == "model")
                        + ", or a plugin's (genlab models lists them).")


def budget_from(usd: float | None, tokens: int | None = None):
    """Return a Budget when a limit was given, else None."""
    from genlab.models import Budget

    return Budget(usd, tokens) if usd is not None or tokens is not None else None


def progress_bars() -> Progress:
    """Progress bars on stderr (what, bar, done of total, time) that vanish when the work ends."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


@contextmanager
def stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """One bar per stage of long work; yields ``report(stage, done, total)`` for the package to call."""
    with progress_bars() as progress:
        bars: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=total)
            progress.update(bars[stage], completed=done, total=total)

        yield report
