"""The search-backend seam: anything with ``search(query, k) -> list[Passage]``.

A notebook is the default backend. Others plug in without changing genlab, by spec:

* ``notebook:NAME``: a genlab notebook (what a bare notebook name means on the CLI);
* ``mypkg.search:make_backend``: a Python callable returning a backend, called with no
  argument, or with the text after ``?`` (``mypkg.search:make_backend?index=news``);
* ``plugin:NAME``: an installed entry point in the ``genlab.search_backends`` group
  (same ``?`` argument).

These forms are entries of kind ``search`` in genlab's one backend registry
(`genlab.models.registry`), which `genlab models` lists and where a ``genlab.backends``
plugin can add a form with its own prefix. genlab ships none that needs the network;
docs/grounding.md shows a web backend.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from genlab.errors import ConfigError, GenlabError
from genlab.ground.passage import Passage, SearchBackend

__all__ = ["ENTRY_POINT_GROUP", "Passage", "SearchBackend", "get_search_backend"]  # plugins import from here

ENTRY_POINT_GROUP = "genlab.search_backends"


def get_search_backend(spec: str) -> SearchBackend:
    """Return the backend a spec names: ``notebook:NAME``, ``plugin:NAME[?arg]`` or ``module:callable[?arg]``."""
    target, _, argument = spec.partition("?")
    kind, _, name = target.partition(":")
    if kind == "notebook":
        from genlab.ground.retrieval import NotebookSearch

        return NotebookSearch.open(name)
    if kind == "plugin":
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
            raise ConfigError(f"no search backend plugin '{name}' is installed"
                              + (f"; installed: {', '.join(known)}" if known else ""))
        load = found[0].load
    elif name:
        def load():
            return getattr(importlib.import_module(kind), name)
    else:
        raise ConfigError(f"unknown search backend '{spec}'; use notebook:NAME, plugin:NAME or module:callable")
    # The backend's own code: what it raises is its failure, told in one line (genlab's own
    # errors, such as a missing key it asked for, pass through as they are).
    try:
        factory = load()
    except GenlabError:
        raise
    except Exception as exc:
        raise ConfigError(f"search backend '{spec}': cannot load {target} ({type(exc).__name__}: {exc})") from exc
    if not callable(factory):
        raise ConfigError(f"search backend '{spec}' is not callable; name a function or class that returns a backend")
    try:
        backend = factory(argument) if argument else factory()
    except GenlabError:
        raise
    except Exception as exc:
        raise ConfigError(f"search backend '{spec}' raised {type(exc).__name__} when made: {exc}") from exc
    if not isinstance(backend, SearchBackend):
        raise ConfigError(f"search backend '{spec}' has no name and search(query, k) method")
    return backend
