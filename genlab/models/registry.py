"""Every backend genlab can reach, in one table: the spec it answers to, how it is built
from that spec, what it is, and whether it is ready on this machine. What each backend
can do (grammars, structured output, logprobs, penalties, logit bias, completions, n,
top_k, price) is declared on its class (see `genlab.models.backend.Backend`).

    get_backend("gemini:gemini-2.5-flash")
      → the entry whose spec prefix matches ("gemini:") → entry.build(spec) → a Backend

`get_model`, `genlab models`, the ``--model`` help, training's choice of weights and
``genlab serve``'s start-up all read this table. Third parties add entries without
changing genlab: an installed entry point in the ``genlab.backends`` group that names a
`BackendEntry` (or a callable returning one). ``kind`` keeps image backends (PNG from a
prompt: `genlab.models.media.ImageBackend`), speech backends (`SpeechBackend`) and search
backends (passages for grounded answers: `genlab.ground.passage.SearchBackend`) in the
same table as models. Where several forms match a spec, the most specific wins: an exact
name, then the longest prefix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Callable, NamedTuple

from genlab.errors import ConfigError, GenlabError

ENTRY_POINT_GROUP = "genlab.backends"


@dataclass(frozen=True)
class BackendEntry:
    name: str                          # short name: local, hf, openai…
    usage: str                         # what a spec looks like: "openai:MODEL"
    description: str
    build: Callable[[str], Any]        # called with the whole spec: a Backend, Image-, Speech- or SearchBackend
    prefixes: tuple[str, ...] = ()     # a spec starting with one of these is this entry's
    exact: tuple[str, ...] = ()        # or a spec equal to one of these
    kind: str = "model"                # model, image, speech, search
    status: Callable[[], str] | None = None   # "ready", "set OPENAI_API_KEY"… for `genlab models`
    trainable: bool = False            # genlab tune and distill can load its weights

    def matches(self, spec: str) -> bool:
        return self.match_length(spec) >= 0

    def match_length(self, spec: str) -> int:
        """How specific this entry's match of ``spec`` is: the longest matching prefix, more
        for an exact name, -1 for none."""
        if spec in self.exact:
            return len(spec) + 1
        return max((len(prefix) for prefix in self.prefixes if spec.startswith(prefix)), default=-1)


# -- the built-in backends (imported only when used) ------------------------------------

def _lazy(target: str, prefix: str | None = "") -> Callable[[str], Any]:
    """A builder that imports ``module:name`` (a module of genlab.models, or a dotted path)
    only when a spec needs it and calls it with the spec less ``prefix`` (``None``: with no
    argument)."""
    def build(spec: str) -> Any:
        module, _, name = target.partition(":")
        factory = getattr(import_module(module if "." in module else f"genlab.models.{module}"), name)
        return factory() if prefix is None else factory(spec.removeprefix(prefix))
    return build


def _espeak_status() -> str:
    from genlab.models.media import espeak_binary

    return f"ready ({espeak_binary()})"


def _notebooks_status() -> str:
    from genlab.ground.notebook import list_notebooks

    names = list_notebooks()
    if not names:
        return "no notebooks yet (genlab notebook create)"
    return f"{len(names)} notebook{'s' * (len(names) != 1)}: {', '.join(names[:4])}{', …' * (len(names) > 4)}"


def _search_plugins_status() -> str:
    from genlab.ground.backends import ENTRY_POINT_GROUP as SEARCH_GROUP

    names = sorted(point.name for point in entry_points(group=SEARCH_GROUP))
    return f"installed: {', '.join(names)}" if names else "none installed"


def _embedded_status() -> str:
    from genlab.models.local import embedded_gguf

    return f"ready ({embedded_gguf().name})"


def _key_status(*names: str, optional: bool = False) -> Callable[[], str]:
    def status() -> str:
        if not names:
            return "no key needed"
        found = next((n for n in names if os.environ.get(n)), None)
        if found:
            return f"key in {found}"
        return f"no key (set {names[0]} if the server needs one)" if optional else f"set {names[0]}"
    return status


OPENAI_COMPAT = _lazy("openai_compat:from_spec")
REMOTE_IMAGES = _lazy("openai_media:OpenAIImages")
REMOTE_SPEECH = _lazy("openai_media:OpenAISpeech")
SEARCH = _lazy("genlab.ground.backends:get_search_backend")

BUILTIN = [
    BackendEntry("local", "local", "the embedded SmolLM2-135M-Instruct, in-process (llama.cpp)",
                 _lazy("local:LocalBackend", None), exact=("local",), status=_embedded_status, trainable=True),
    BackendEntry("gguf", "local:/path/to/model.gguf", "any GGUF file, in-process (llama.cpp)",
                 _lazy("local:LocalBackend", "local:"), prefixes=("local:",)),
    BackendEntry("hf", "hf:DIR", "a Hugging Face model folder (e.g. from genlab tune), on transformers",
                 _lazy("hf:HFBackend", "hf:"), prefixes=("hf:",), trainable=True),
    BackendEntry("openai", "openai:MODEL", "OpenAI", OPENAI_COMPAT, prefixes=("openai:",),
                 status=_key_status("OPENAI_API_KEY")),
    BackendEntry("gemini", "gemini:MODEL", "Gemini's OpenAI-compatible endpoint", OPENAI_COMPAT,
                 prefixes=("gemini:",), status=_key_status("GEMINI_API_KEY", "GOOGLE_API_KEY")),
    BackendEntry("ollama", "ollama:MODEL", "a local Ollama (OLLAMA_HOST, default localhost:11434)",
                 OPENAI_COMPAT, prefixes=("ollama:",), status=_key_status()),
    BackendEntry("url", "http://HOST:PORT/v1#MODEL", "any OpenAI-compatible server (vLLM, llama.cpp, genlab serve…)",
                 OPENAI_COMPAT, prefixes=("http://", "https://"), status=_key_status("GENLAB_API_KEY", optional=True)),
    BackendEntry("cards", "cards", "designed cards drawn offline with Pillow (not generated pictures)",
                 _lazy("cards:CardsBackend", None), exact=("cards",), kind="image", status=lambda: "ready"),
    BackendEntry("openai-images", "openai:MODEL", "OpenAI's images API (gpt-image-1, dall-e-3)", REMOTE_IMAGES,
                 prefixes=("openai:",), kind="image", status=_key_status("OPENAI_API_KEY")),
    BackendEntry("gemini-images", "gemini:MODEL", "Imagen on Gemini's OpenAI-compatible endpoint", REMOTE_IMAGES,
                 prefixes=("gemini:",), kind="image", status=_key_status("GEMINI_API_KEY", "GOOGLE_API_KEY")),
    BackendEntry("url-images", "http://HOST:PORT/v1#MODEL", "any OpenAI-compatible images endpoint (genlab serve: #cards)",
                 REMOTE_IMAGES, prefixes=("http://", "https://"), kind="image",
                 status=_key_status("GENLAB_API_KEY", optional=True)),
    BackendEntry("espeak", "espeak[:VOICE]", "espeak-ng, offline (voices: espeak-ng --voices)",
                 _lazy("media:EspeakSpeech"), exact=("espeak",), prefixes=("espeak:",), kind="speech",
                 status=_espeak_status),
    BackendEntry("openai-speech", "openai:MODEL[@VOICE]", "OpenAI's speech API (gpt-4o-mini-tts, tts-1; voice alloy…)",
                 REMOTE_SPEECH, prefixes=("openai:",), kind="speech", status=_key_status("OPENAI_API_KEY")),
    BackendEntry("url-speech", "http://HOST:PORT/v1#MODEL[@VOICE]",
                 "any OpenAI-compatible speech endpoint (genlab serve: #espeak)", REMOTE_SPEECH,
                 prefixes=("http://", "https://"), kind="speech", status=_key_status("GENLAB_API_KEY", optional=True)),
    BackendEntry("notebook", "notebook:NAME", "a genlab notebook: BM25 and MiniLM, reranked (a bare NAME on the CLI)",
                 SEARCH, prefixes=("notebook:",), kind="search", status=_notebooks_status),
    BackendEntry("search-plugin", "plugin:NAME[?ARG]", "a search backend installed in the genlab.search_backends "
                 "entry-point group", SEARCH, prefixes=("plugin:",), kind="search", status=_search_plugins_status),
    BackendEntry("python", "module:callable[?ARG]", "a search backend a Python callable makes (docs/grounding.md)",
                 SEARCH, prefixes=("",), kind="search"),
]


def entries() -> tuple[BackendEntry, ...]:
    """The built-in backends, then those installed as plugins that load."""
    return (*BUILTIN, *plugins().loaded)


class Plugins(NamedTuple):
    loaded: tuple[BackendEntry, ...]
    broken: tuple[str, ...]   # what went wrong with each plugin that did not load, and the fix


@lru_cache(maxsize=1)
def plugins() -> Plugins:
    """The installed plugins (read once per process). A broken plugin must not break genlab:
    the built-in backends and the other plugins still work, and its error is told where a
    spec found no backend, and by `genlab models`."""
    loaded, broken = [], []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"the backend plugin '{point.name}' ({point.value})"
        try:
            entry = point.load()
            entry = entry() if callable(entry) and not isinstance(entry, BackendEntry) else entry
        except Exception as exc:
            broken.append(f"{where} failed to load: {exc}; fix or uninstall it")
            continue
        if isinstance(entry, BackendEntry):
            loaded.append(entry)
        else:
            broken.append(f"{where} is not a BackendEntry; fix or uninstall it")
    return Plugins(tuple(loaded), tuple(broken))


def spec_forms(kind: str = "model") -> str:
    """'local, local:/path/to/model.gguf, hf:DIR, …': every spec form, for help and errors."""
    return ", ".join(e.usage for e in entries() if e.kind == kind)


def find_entry(spec: str, kind: str = "model") -> BackendEntry:
    """The entry of ``kind`` that matches ``spec`` most specifically (the first of equals)."""
    spec = spec.strip()
    length, entry = max(((entry.match_length(spec), entry) for entry in entries() if entry.kind == kind),
                        key=lambda pair: pair[0], default=(-1, None))
    if entry is not None and length >= 0:
        return entry
    broken = "".join(f"; {line}" for line in plugins().broken)
    raise ConfigError(f"unknown {kind} spec '{spec}'; use {spec_forms(kind)} (see: genlab models){broken}")


def get_backend(spec: str, kind: str = "model") -> Any:
    """Parse a spec into its backend (no network call is made)."""
    return find_entry(spec, kind).build(spec.strip())


def describe_entries(kind: str = "model") -> list[tuple[str, str, str]]:
    """(spec form, what, status) for each backend: what `genlab models` prints."""
    rows = []
    for entry in entries():
        if entry.kind != kind:
            continue
        try:
            status = entry.status() if entry.status else ""
        except GenlabError as exc:
            status = f"error: {exc}"
        rows.append((entry.usage, entry.description, status))
    if kind == "model":   # listed once, with the models
        rows += [("(plugin)", "a plugin that did not load", f"error: {line}") for line in plugins().broken]
    return rows
