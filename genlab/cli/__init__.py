"""The `genlab` command. Each sub-command parses its arguments, calls one package
function and prints the result; the work lives in the packages."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from genlab.errors import GenlabError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="genlab: LLM engineering techniques on any model, offline by default.")
# Tables stay readable when output goes to a file or pipe (rich would assume 80 columns).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ModelOpt = typer.Option("local", "--model", "-m", help="Model spec: local, local:/x.gguf, openai:MODEL, "
                        "gemini:MODEL, ollama:MODEL or http://HOST:PORT/v1#MODEL.")


def budget_from(usd: float | None, tokens: int | None = None):
    """Return a Budget when a limit was given, else None."""
    from genlab.models import Budget

    return Budget(usd, tokens) if usd is not None or tokens is not None else None


from genlab.cli import evolve as _evolve  # noqa: E402  (registers `genlab evolve`)
from genlab.cli import models as _models  # noqa: E402  (registers prompt, chat, models, usage, serve)
from genlab.cli import reason as _reason  # noqa: E402  (registers classify, ttc)
from genlab.cli import evaluate as _evaluate  # noqa: E402  (registers eval)
from genlab.cli import ground as _ground  # noqa: E402  (registers notebook, ask)
from genlab.cli import train as _train  # noqa: E402  (registers feedback, tune)

def main() -> None:
    """Entry point: user errors print one line and exit 1; bugs raise under GENLAB_DEBUG."""
    try:
        app()
    except GenlabError as exc:
        if os.environ.get("GENLAB_DEBUG"):
            raise
        err.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
