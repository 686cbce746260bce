"""The `genlab` command. Each sub-command parses its arguments, calls one package
function and prints the result; the work lives in the packages."""

from __future__ import annotations

import errno
import os
import sys

# Each module adds its commands to the app; this order is their order in --help.
from genlab.cli import evolve, models, reason, evaluate, ground, train, trailer  # noqa: F401, I001
from genlab.cli.common import app, err, labelled
from genlab.errors import GenlabError


# A path the user gave that cannot be written as asked: what to do about it.
PATH_FIXES = {
    errno.EEXIST: "a file is where a folder is needed; choose another path",
    errno.ENOTDIR: "a file is where a folder is needed; choose another path",
    errno.EISDIR: "a folder is where a file is needed; choose another path",
    errno.EACCES: "this user has no permission there; choose another path",
    errno.EPERM: "this user has no permission there; choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOSPC: "the disk is full; free some space and run it again",
    errno.EFBIG: "the file would be larger than the file system (or ulimit -f) allows; choose another disk",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.ENOENT: "check the path, or choose another",   # also a folder that cannot be made there (/proc)
}


def main() -> None:
    """Entry point: user errors print one line and exit 1; bugs raise under GENLAB_DEBUG."""
    try:
        app()
    except GenlabError as exc:
        if os.environ.get("GENLAB_DEBUG"):
            raise
        err.print(labelled("error:", "red", str(exc)))
        sys.exit(1)
    except OSError as exc:
        if os.environ.get("GENLAB_DEBUG") or exc.filename is None or exc.errno not in PATH_FIXES:
            raise
        err.print(labelled("error:", "red", f"{exc.filename}: {exc.strerror}; {PATH_FIXES[exc.errno]}"))
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
