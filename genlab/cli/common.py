"""What every `genlab` sub-command shares: the app, the two consoles, common options."""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from genlab.errors import ConfigError
from genlab.io import writable_folder
from genlab.models.registry import BUILTIN

# Help is Markdown, which joins a paragraph's lines; typer's "rich" mode keeps the docstrings'
# line breaks (ragged at 80 columns) and takes "[options]" for a markup tag and drops it.
# Sub-apps inherit the root's mode.
app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown", add_completion=False,
                  pretty_exceptions_enable=False, help="genlab: LLM engineering techniques on any model, offline by default.")


# Tables stay readable when output goes to a file or pipe (rich would assume 80 columns).
# No markup: what genlab prints holds paths, model output and user text, in which rich would
# take "a[i]" for a style and drop it (or fail on "[/x]"); styles are given as styles.
out = Console(highlight=False, soft_wrap=True, markup=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def _print_version(asked: bool) -> None:
    if asked:
        from genlab import __version__

        out.print(f"genlab {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                          help="Print genlab's version and exit.")) -> None:
    pass   # the root's own options; its help is the app's


@contextmanager
def on_ctrl_c(say: Callable[[], str]) -> Iterator[None]:
    """Ctrl-C ends the command with status 130 after ``say()``: what is kept, and how to go on
    (typer would end it without a word)."""
    try:
        yield
    except KeyboardInterrupt:
        err.print(say())
        raise typer.Exit(130) from None


def labelled(label: str, style: str, text: str) -> Text:
    """A line that starts with a styled label: "error: …", "skipped …"."""
    return Text.assemble((label, style), " ", text)

def builtin_forms(kind: str) -> str:
    """The built-in spec forms of a kind of backend, for help (plugins are not read at import)."""
    return ", ".join(entry.usage for entry in BUILTIN if entry.kind == kind)


ModelOpt = typer.Option("local", "--model", "-m", help="Model spec: " + builtin_forms("model")
                        + ", or a plugin's (genlab models lists them).")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON.")
BudgetUsdOpt = typer.Option(None, "--budget-usd", help="Refuse any call that could take the spending past this "
                            "many US dollars.")
BudgetTokensOpt = typer.Option(None, "--budget-tokens", help="Refuse further calls once this many tokens are spent.")


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def output_file(path: Path | None, option: str, *suffixes: str, beside: tuple[str, ...] = ()) -> Path | None:
    """Check where a command will write before its work: the name ends as it must and its
    folder exists (it is made), so a long run never ends on an error about the path.
    ``beside``: the endings of files written next to it (NAME.json beside NAME.md)."""
    if path is None:
        return None
    if suffixes and path.suffix.lower() not in suffixes:
        endings = ", ".join(suffixes[:-1]) + " or " + suffixes[-1] if len(suffixes) > 1 else suffixes[0]
        raise ConfigError(f"{option} {path}: give a file name ending in {endings}")
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name")
    # The user named PATH, not the files beside it: one already there beside a new PATH is
    # theirs (notes.json beside a new notes.md), where beside an existing one it is a rerun's.
    taken = [path.with_suffix(ending) for ending in beside if path.with_suffix(ending).exists()]
    if taken and not path.exists():
        raise ConfigError(f"{option} {path}: genlab also writes {taken[0]} beside it, and that file exists; "
                          "choose another name, or move the file")
    writable_folder(path.parent, option)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def budget_from(usd: float | None, tokens: int | None = None):
    """Return a Budget when a limit was given, else None."""
    from genlab.models import Budget

    return Budget(usd, tokens) if usd is not None or tokens is not None else None


#: Cores' worth of other work that makes a model run slower: one busy process on two cores
#: made a 2.2 s `genlab prompt` take 4.5 s, two made it 15.9 s.
BUSY_NOTE = 0.5


def note_busy_cores() -> None:
    """Before long model work, say so when other processes keep the cores busy, so that a
    slow run is not taken for genlab's speed. Only for a person at a terminal."""
    from genlab.machine import busy_cores, usable_cores

    if err.is_terminal and (busy := busy_cores()) is not None and busy >= BUSY_NOTE:
        err.print(busy_note(busy, usable_cores()), style="yellow")


def busy_note(busy: float, cores: int) -> str:
    return (f"note: other processes keep {busy:.1f} of the {cores} cores busy; what genlab runs here shares "
            "them and may take several times longer until they stop (top lists them)")


def progress_bars() -> Progress:
    """Progress bars on stderr (what, bar, done of total, time) that vanish when the work ends.
    Off where stderr is not a terminal: a log gets no bars, and no blank line where they were."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


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


def chat_lines(intro: str, usage: str, commands: tuple[str, ...] = ()) -> Iterator[str]:
    """The lines a chat loop answers, typed at a ``you>`` prompt or read from a pipe, until
    /exit, /quit or Ctrl-D; blank lines are skipped. /help prints ``usage``. A /word that is
    not one of ``commands`` is refused, so a mistyped command never reaches the model as a
    message (a line such as "/etc/hosts is what?" is not a /word and goes through)."""
    interactive = sys.stdin.isatty()
    if interactive:
        err.print(f"{intro} — {usage}", style="dim")
    while True:
        try:
            line = input("you> " if interactive else "").strip()
        except (EOFError, KeyboardInterrupt):
            return
        word = line.split(" ", 1)[0]
        if word in ("/exit", "/quit"):
            return
        if word == "/help":
            err.print(usage)
        elif re.fullmatch(r"/[A-Za-z]+", word) and word not in commands:
            err.print(f"no command {word}; {usage}", style="yellow")
        elif line:
            yield line
