"""Pictures and speech from any OpenAI-compatible endpoint, through the `openai` SDK:
``images.generate`` (OpenAI's image models, Imagen on Gemini's endpoint, ``genlab serve``'s
cards) and ``audio.speech.create`` (OpenAI's voices, ``genlab serve``'s espeak-ng).

Keys, base URLs, retries and the translation of the SDK's errors are the chat backend's
(`genlab.models.openai_compat`): each media backend holds one for its client.
"""

from __future__ import annotations

import base64

import openai

from genlab.errors import ConfigError, ModelError
from genlab.models.media import ImageBackend, PictureRequest, Speech, SpeechBackend
from genlab.models.openai_compat import from_spec

#: The widest landscape size each family of image models takes; the picture is then
#: cropped to the video's aspect. Other models are asked for the request's own size.
LANDSCAPE_SIZES = {"dall-e-3": "1792x1024", "gpt-image": "1536x1024", "dall-e-2": "1024x1024"}
DEFAULT_VOICE = "alloy"


def image_prompt(request: PictureRequest) -> str:
    return f"{request.prompt}. Mood: {request.mood}. Title: {request.title}. No text in the picture."


class OpenAIImages(ImageBackend):
    def __init__(self, spec: str):
        self.spec = spec
        self.endpoint = from_spec(spec)
        self.model_id = self.endpoint.model_id

    def picture(self, request: PictureRequest) -> bytes:
        size = next((s for family, s in LANDSCAPE_SIZES.items() if self.model_id.startswith(family)),
                    "x".join(map(str, request.size)))
        kwargs = {"model": self.model_id, "prompt": image_prompt(request), "n": 1, "size": size}
        if not self.model_id.startswith("gpt-image"):      # GPT image models always answer base64
            kwargs["response_format"] = "b64_json"
        try:
            out = self.endpoint.client.images.generate(**kwargs)
        except openai.APIError as exc:
            raise self.endpoint._translate(exc) from exc
        data = out.data[0] if out.data else None
        if data is None or not data.b64_json:
            raise ModelError(f"{self.describe()} returned no image data (b64_json); check that it is an image model")
        return base64.b64decode(data.b64_json)

    def describe(self) -> str:
        return f"images from {self.endpoint.describe()}"

    def warm_up(self) -> None:
        self.endpoint.reachable()


class OpenAISpeech(SpeechBackend):
    """``SPEC@VOICE``: e.g. ``openai:gpt-4o-mini-tts@coral``, ``http://HOST/v1#espeak@en-gb``."""

    def __init__(self, spec: str):
        self.spec = spec
        # The voice follows the model name: after '#' in a URL (whose credentials may hold an '@').
        head, sep, tail = spec.rpartition("#") if spec.startswith(("http://", "https://")) else spec.partition(":")
        name, _, voice = tail.partition("@")
        self.voice = voice or DEFAULT_VOICE
        self.endpoint = from_spec(head + sep + name)
        self.model_id = self.endpoint.model_id

    def speak(self, text: str) -> Speech:
        try:
            out = self.endpoint.client.audio.speech.create(model=self.model_id, voice=self.voice, input=text,
                                                           response_format="wav")
        except openai.APIError as exc:
            raise self.endpoint._translate(exc) from exc
        try:
            return Speech.from_wav(out.content, f"{self.describe()}'s reply")
        except ConfigError as exc:
            raise ModelError(str(exc)) from exc

    def describe(self) -> str:
        return f"voice {self.voice} of {self.endpoint.describe()}"

    def warm_up(self) -> None:
        self.endpoint.reachable()
