"""Write a trailer's storyboard: for each segment, one scene the model fills in under a JSON
schema (title, narration, image prompt, mood, pages), framed by a logline card and a
closing card.

Structured output makes every row parse on any model that takes a schema, the 135M
embedded one included; the schema bounds the lengths (a scene is a few seconds of
speech) and allows only the segment's own pages, so a citation cannot point outside it.
What the small model writes is often plain or off. The quote on each card is genlab's,
taken verbatim from the segment, so every card carries the source's own words; and a
field the model copied from the prompt's worked example instead of writing it about its
segment is replaced by the segment's heading or quote, and named in ``Scene.replaced``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genlab.errors import ModelError
from genlab.ground.answer import loop_start
from genlab.ground.support import lexical_support
from genlab.models import Model
from genlab.models.media import MOODS
from genlab.trailer.segment import MARKDOWN_HEADING, Segment

SCENE_PROMPT = "Text ({where}):\n{text}\n\nWrite the trailer scene for this text as JSON."
#: One worked example before the real segment: a 135M model copies the shape of an
#: example far better than it follows a described one (described, it narrates the instructions).
EXAMPLE_TEXT = ("The old mill\nThe mill on the Aske river was built in 1790 and ground flour for three villages. "
                "It closed in 1921 after a fire, and the wheel was restored by volunteers in 1988.")
EXAMPLE_SCENE = {"title": "The old mill", "narration": "For over a century the mill on the Aske ground flour for three "
                 "villages, until a fire closed it in 1921.", "image_prompt": "A stone water mill beside a river at "
                 "dawn, its wooden wheel turning", "mood": "calm", "pages": [4]}
LOGLINE_PROMPT = ("Here are the scenes of a short video trailer for {work}:\n{scenes}\n\n"
                  "Write its logline as JSON: one sentence that makes a viewer want to read it.")
#: Longest source text put in one scene's prompt (characters): the rest of a long segment
#: still counts for its pages, but a 135M model reads little of a long prompt anyway.
PROMPT_CHARS = 1800
#: Markdown that cards and narration give as plain words: [text](target) and ![alt](target), *text* and **text**.
MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
MARKDOWN_EMPHASIS = re.compile(r"(\*\*?)(\S(?:.*?\S)?)\1")
#: Longest narration of a scene, and longest logline (characters): a few seconds of speech.
NARRATION_CHARS, LOGLINE_CHARS = 260, 200


class SceneDraft(BaseModel):
    """What the model writes for one scene (the schema it answers)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=2, max_length=70)
    narration: str = Field(min_length=10, max_length=NARRATION_CHARS)
    image_prompt: str = Field(min_length=5, max_length=220)
    mood: str
    pages: list[int] = []


@dataclass(frozen=True)
class Scene:
    kind: str                      # logline, scene, closing
    title: str
    narration: str
    image_prompt: str
    mood: str
    source: str                    # file name(s) the scene draws on ('' for the frame cards)
    pages: tuple[int, ...]
    quote: str                     # verbatim from the source: what the card shows under the title
    #: Fields genlab wrote in place of the model's: the model copied the worked example
    #: instead of writing about its segment (see `copied_example`), went round in a loop
    #: (`looped`), or narrated nothing but the title.
    replaced: tuple[str, ...] = ()

    @property
    def citation(self) -> str:
        if not self.pages:
            return self.source
        pages = f"page {self.pages[0]}" if len(self.pages) == 1 else "pages " + ", ".join(map(str, self.pages))
        return f"{self.source}, {pages}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        return cls(**{**data, "pages": tuple(data["pages"]), "replaced": tuple(data.get("replaced", ()))})


def scene_schema(segment: Segment) -> dict:
    """The schema of one scene; its pages may only be the segment's own (a segment that
    spans several sources has no page numbers: its scene cites the files)."""
    properties = {
        "title": {"type": "string", "minLength": 2, "maxLength": 70},
        "narration": {"type": "string", "minLength": 10, "maxLength": NARRATION_CHARS},
        "image_prompt": {"type": "string", "minLength": 5, "maxLength": 220},
        "mood": {"type": "string", "enum": list(MOODS)},
    }
    if segment.pages:
        properties["pages"] = {"type": "array", "items": {"type": "integer", "enum": list(segment.pages)},
                               "minItems": 1, "maxItems": len(segment.pages)}
    return {"type": "json_schema", "json_schema": {"name": "scene", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}}}


LOGLINE_SCHEMA = {"type": "json_schema", "json_schema": {"name": "logline", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["logline"],
    "properties": {"logline": {"type": "string", "minLength": 10, "maxLength": LOGLINE_CHARS}}}}}


def scene_request(segment: Segment) -> dict:
    """The chat request for one scene (also what keys its stored row)."""
    text = segment.text if len(segment.text) <= PROMPT_CHARS else segment.text[:PROMPT_CHARS] + " …"
    example = SCENE_PROMPT.format(where="mills.pdf, page 4", text=EXAMPLE_TEXT)
    return {"messages": [{"role": "user", "content": example},
                         {"role": "assistant", "content": json.dumps(EXAMPLE_SCENE)},
                         {"role": "user", "content": SCENE_PROMPT.format(where=segment.where, text=text)}],
            "response_format": scene_schema(segment), "temperature": 0, "max_tokens": 400}


def write_scene(model: Model, segment: Segment) -> Scene:
    """Ask the model for one scene of ``segment``; raise ModelError when its reply breaks the schema."""
    request = scene_request(segment)
    reply = model.chat(request.pop("messages"), cache=True, **request).text
    try:
        draft = SceneDraft.model_validate_json(reply)
    except ValidationError as exc:
        raise ModelError(f"{model.name}'s scene for '{segment.title}' does not follow the storyboard schema "
                         f"({exc.errors()[0]['msg']}); use a model that takes JSON schemas") from exc
    if draft.mood not in MOODS or not set(draft.pages) <= set(segment.pages) or (segment.pages and not draft.pages):
        raise ModelError(f"{model.name}'s scene for '{segment.title}' has a mood or pages outside the schema; "
                         "use a model that takes JSON schemas")
    body = segment.text.removeprefix(segment.title)         # the quote is from the text, not its heading
    quote = quote_of(body)
    written = {"title": _clean(draft.title), "narration": _whole_sentences(draft.narration, NARRATION_CHARS),
               "image_prompt": _clean(draft.image_prompt)}
    # Where the model copied the example, genlab's own words from the segment take the field's place.
    fallback = {"title": segment.title, "narration": quote, "image_prompt": f"{segment.title}: {quote}"}
    replaced = tuple(name for name, text in written.items() if copied_example(text, segment) or looped(text)
                     or name == "narration" and _words(text) <= _words(f"{segment.title} {written['title']}"))
    written |= {name: fallback[name] for name in replaced}
    return Scene("scene", written["title"], written["narration"], written["image_prompt"], draft.mood,
                 segment.source, tuple(sorted(set(draft.pages))), quote, replaced)


def copied_example(text: str, segment: Segment) -> bool:
    """Whether ``text`` comes from the worked example rather than from ``segment`` (the
    lexical check of genlab.ground.check: 60 % of its content words and all its numbers)."""
    example = " ".join([EXAMPLE_TEXT, *map(str, EXAMPLE_SCENE.values())])
    return lexical_support(text, example) and not lexical_support(text, segment.text)


def write_logline(model: Model, scenes: list[Scene], work: str) -> Scene:
    listed = "\n".join(f"- {s.title}: {s.narration}" for s in scenes)
    reply = model.chat(LOGLINE_PROMPT.format(work=work, scenes=listed), response_format=LOGLINE_SCHEMA,
                       temperature=0, max_tokens=120, cache=True).text
    try:
        logline = _whole_sentences(json.loads(reply)["logline"], LOGLINE_CHARS)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{model.name}'s logline does not follow its schema; use a model that takes JSON schemas") from exc
    replaced = ("narration",) if looped(logline) else ()       # the card's title, said, rather than a loop
    return Scene("logline", work, f"{work}." if replaced else logline, f"A title card for {work}",
                 scenes[0].mood if scenes else "calm", "", (), "", replaced)


def looped(text: str) -> bool:
    """Whether the model went round in a loop (genlab.ground.answer.loop_start)."""
    return loop_start(text) is not None


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def closing_card(work: str, sources: list[str]) -> Scene:
    """genlab's own last card: what the trailer was made from (a code base's first few files)."""
    made_from = ", ".join(sources) if len(sources) <= 4 else f"{', '.join(sources[:3])} and {len(sources) - 3} more files"
    return Scene("closing", work, f"{work}. Made from {made_from}.", f"A closing card for {work}", "calm",
                 made_from, (), "")


def quote_of(text: str, limit: int = 140) -> str:
    """The first whole sentence of ``text`` that is not a heading, shortened to ``limit``."""
    prose = " ".join(line for line in text.splitlines() if not MARKDOWN_HEADING.match(line))
    flat = _clean(prose)
    sentences = re.findall(r"[^.!?]*[.!?]", flat) or [flat]
    for sentence in sentences:
        sentence = sentence.strip()
        if 20 <= len(sentence) <= limit:
            return sentence
    first = sentences[0].strip()
    return first if len(first) <= limit else first[:limit - 1].rsplit(" ", 1)[0] + "…"


def _clean(text: str) -> str:
    """``text`` on one line, its Markdown links and emphasis as plain words (for cards and speech)."""
    return " ".join(MARKDOWN_EMPHASIS.sub(r"\2", MARKDOWN_LINK.sub(r"\1", text)).replace("`", "").split())


def _whole_sentences(text: str, limit: int) -> str:
    """``text`` without a sentence the length bound (``limit``) cut off, where a whole one
    comes before it; else the cut sentence, marked as cut."""
    cut = len(text) >= limit
    text = _clean(text)
    end = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    if text[-1:] in ".!?":
        return text
    if end >= 0:
        return text[:end + 1]
    return text.rstrip(" ,;:-") + "…" if cut else text
