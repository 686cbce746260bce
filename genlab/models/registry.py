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
prompt: `genlab.models.media.ImageBackend`) and speech backends (`SpeechBackend`) in the
same table as models.
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
    build: Callable[[str], Any]        # called with the whole spec: a Backend, ImageBackend or SpeechBackend
    prefixes: tuple[str, ...] = ()     # a spec starting with one of these is this entry's
    exact: tuple[str, ...] = ()        # or a spec equal to one of these
    kind: str = "model"                # model, image, speech
    status: Callable[[], str] | None = None   # "ready", "set OPENAI_API_KEY"… for `genlab models`
    trainable: bool = False            # genlab tune and distill can load its weights

    def matches(self, spec: str) -> bool:
        return spec in self.exact or spec.startswith(self.prefixes)


# -- the built-in backends (imported only when used) ------------------------------------

def _lazy(target: str, prefix: str | None = "") -> Callable[[str], Any]:
    """A builder that imports ``module:name`` only when a spec needs it and calls it with the
    spec less ``prefix`` (``None``: with no argument)."""
    def build(spec: str) -> Any:
        module, _, name = target.partition(":")
        factory = getattr(import_module(f"genlab.models.{module}"), name)
        return factory() if prefix is None else factory(spec.removeprefix(prefix))
    return build


def _espeak_status() -> str:
    from genlab.models.media import espeak_binary

    return f"ready ({espeak_binary()})"


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
    spec = spec.strip()
    for entry in entries():
        if entry.kind == kind and entry.matches(spec):
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
