"""Ask a model for new versions of the evolved function and get them out of its answers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from genlab.errors import ConfigError
from genlab.models import Model, Request, Response, build_request
from genlab.search.funsearch.code import Function, extract_function, names_used
from genlab.search.funsearch.grammar import Unsupported, grammar_for
from genlab.search.funsearch.prompt import chat_messages
from genlab.search.funsearch.spec import Spec

#: Where a completion model's answer is surely over. Not "\ndef ": small models often
#: skip the body and write the next version as a whole function, which is kept.
COMPLETION_STOPS = ["\nclass ", "\nif __name__", "\n```", "\n\n\n\n"]


@dataclass
class Draft:
    """One sample from the model: its raw text and the function found in it (or why not)."""

    raw: str
    code: str | None
    error_kind: str | None = None
    error: str | None = None


def check_draft(raw: str, header: Function, name: str) -> Draft:
    """Extract the function from a model answer and apply FunSearch's discard rules."""
    function = extract_function(raw, header, name)
    if function is None:
        return Draft(raw, None, "no_function", "no function body could be parsed from the answer")
    code = str(function)
    version = re.compile(rf"{re.escape(name)}_v\d+")
    earlier = sorted(n for n in names_used(code) if version.fullmatch(n))
    if earlier:
        return Draft(raw, None, "calls_earlier_version", f"calls {', '.join(earlier)}")
    return Draft(raw, code)


class Sampler:
    """Draws samples for a prompt from one model, in completion or chat form."""

    def __init__(self, model: Model, *, chat: bool, samples_per_prompt: int = 4, temperature: float = 1.0,
                 top_p: float = 0.95, max_tokens: int = 512, seed: int | None = None, grammar: str | None = None):
        self.model = model
        self.chat = chat
        self.grammar = grammar  # GBNF of the function body: when set, every sample is a body that parses
        self.samples_per_prompt = samples_per_prompt
        self.temperature, self.top_p, self.max_tokens, self.seed = temperature, top_p, max_tokens, seed

    def draw(self, prompt: str, header: Function, name: str, prompt_index: int,
             n: int | None = None) -> tuple[list[Draft], Response]:
        """Return ``n`` drafts for one prompt, and the model's response (for usage and cost)."""
        response = self.model.execute(self.request(prompt, header, prompt_index, n))
        return [check_draft(text, header, name) for text in response.texts], response

    def request(self, prompt: str, header: Function, prompt_index: int, n: int | None = None) -> Request:
        """The model call that draws ``n`` samples for one prompt."""
        # A per-prompt seed keeps a seeded run reproducible where the backend honours seeds.
        # Choices i of one prompt use seed + i (see Model), so prompts are spaced 64 apart.
        seed = None if self.seed is None else (self.seed * 1_000_003 + 64 * prompt_index) % (2 ** 31)
        options = dict(n=n or self.samples_per_prompt, temperature=self.temperature, top_p=self.top_p,
                       max_tokens=self.max_tokens, seed=seed, grammar=self.grammar)
        if self.chat:
            return build_request(messages=chat_messages(prompt, header, body_only=self.grammar is not None),
                                 **options)
        return build_request(prompt=prompt, stop=COMPLETION_STOPS, **options)


def choose_grammar(spec: Spec, constrain: bool | None, model: Model) -> tuple[str | None, str | None]:
    """Return (the body grammar or None, a one-line notice for the user or None).

    ``constrain`` None means: constrain wherever the backend takes grammars. A spec the
    grammar cannot describe falls back to free sampling, with a notice saying why.
    """
    if constrain is False:
        return None, None
    if not model.backend.supports_grammar:
        if constrain:
            raise ConfigError(f"--constrain needs a backend that takes grammars (local, local:FILE.gguf, a "
                              f"llama.cpp server or genlab serve by URL); {model.name} does not: use --no-constrain")
        return None, None
    try:
        return grammar_for(spec), None
    except Unsupported as exc:
        return None, f"free sampling: the grammar cannot describe {spec.function_name}() ({exc})"
