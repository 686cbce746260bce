"""The `genlab` command. Each sub-command parses its arguments, calls one package
function and prints the result; the work lives in the packages."""

from __future__ import annotations

import os
import sys

# Each module adds its commands to the app; this order is their order in --help.
from genlab.cli import evolve, models, reason, evaluate, ground, train, trailer  # noqa: F401, I001
from genlab.cli.common import app, err
from genlab.errors import GenlabError


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
