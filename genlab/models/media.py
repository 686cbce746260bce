"""The seams of picture and speech backends, and the offline voice (espeak-ng).

Like a model backend, each is one method wide and declares what it costs: an image
backend turns a `PictureRequest` into PNG bytes, a speech backend turns text into
`Speech` (16-bit mono PCM). Both are found through the one registry
(`genlab.models.registry`, kinds ``image`` and ``speech``), so a plugin adds one the way
it adds a model backend.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass

from genlab.errors import ConfigError, GenlabError

MOODS = ("calm", "hopeful", "mysterious", "tense", "joyful", "somber")


@dataclass(frozen=True)
class PictureRequest:
    prompt: str          # what a generating model is asked to draw
    title: str           # what a designed card shows
    quote: str           # a short line from the source, for the card
    mood: str            # one of MOODS
    size: tuple[int, int] = (1280, 720)


class ImageBackend:
    spec: str = ""
    #: Name prices are looked up by (``output_cost_per_image``).
    model_id: str = ""
    #: Runs on this machine at no charge.
    free: bool = False

    def picture(self, request: PictureRequest) -> bytes:
        """Return one picture for ``request`` as PNG bytes, ``request.size`` pixels."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.spec

    def warm_up(self) -> None:
        """Fail now on what would fail the first call (an endpoint that cannot be reached)."""


@dataclass(frozen=True)
class Speech:
    sample_rate: int
    pcm: bytes           # 16-bit signed little-endian mono

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * self.sample_rate)

    def to_wav(self) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.sample_rate)
            out.writeframes(self.pcm)
        return buffer.getvalue()

    @classmethod
    def from_wav(cls, data: bytes, where: str = "the speech") -> "Speech":
        """Read WAV bytes (mono or stereo, 16-bit) into mono Speech."""
        try:
            with wave.open(io.BytesIO(data)) as wav:
                params, frames = wav.getparams(), wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as exc:
            raise ConfigError(f"{where} is not a WAV file ({exc}); ask the speech endpoint for response_format=wav") from exc
        if params.sampwidth != 2:
            raise ConfigError(f"{where} has {8 * params.sampwidth}-bit samples; genlab reads 16-bit WAV")
        if params.nchannels > 1:
            import numpy as np

            samples = np.frombuffer(frames, dtype="<i2").reshape(-1, params.nchannels)
            frames = samples.mean(axis=1).astype("<i2").tobytes()
        return cls(params.framerate, frames)


class SpeechBackend:
    spec: str = ""
    #: Name prices are looked up by (``input_cost_per_character``).
    model_id: str = ""
    free: bool = False

    def speak(self, text: str) -> Speech:
        """Return ``text`` spoken, as 16-bit mono PCM."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.spec

    def warm_up(self) -> None:
        """Fail now on what would fail the first call (an endpoint that cannot be reached)."""


@dataclass(frozen=True)
class Voice:
    name: str        # espeak-ng voice+variant
    pitch: int       # 0-99
    speed: int       # words per minute


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if not binary:
        raise ConfigError("espeak-ng is not installed; install it with `apt-get install espeak-ng` "
                          "(make test/run does this where it can)")
    return binary


def espeak(text: str, voice: Voice) -> Speech:
    """Speak ``text`` with espeak-ng in ``voice``."""
    result = subprocess.run([espeak_binary(), "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed),
                             "--stdin", "--stdout"], input=text.encode("utf-8"), capture_output=True, timeout=300)
    if result.returncode != 0 or not result.stdout:
        _espeak_failed(voice.name, result)
    return Speech.from_wav(result.stdout, "espeak-ng's output")


def _espeak_failed(name: str, result: subprocess.CompletedProcess):
    said = result.stderr.decode(errors="replace").strip() or f"exit status {result.returncode}"
    fix = "; `espeak-ng --voices` lists the voices this machine has" if "voice" in said.lower() else ""
    raise ConfigError(f"espeak-ng failed with voice {name!r} ({said}){fix}")


class EspeakSpeech(SpeechBackend):
    """espeak-ng, offline: ``espeak`` (a US English voice) or ``espeak:VOICE`` (any of
    ``espeak-ng --voices``, with an optional ``+variant``)."""

    free = True

    def __init__(self, spec: str = "espeak"):
        espeak_binary()                   # missing engine: say so before any other work
        self.spec = spec
        name = spec.partition(":")[2] or "en-us+m3"
        self.voice = Voice(name, 40, 160)
        # A voice this machine lacks: say so now, before a storyboard is written for it.
        check = subprocess.run([espeak_binary(), "-v", name, "-q", "."], capture_output=True, timeout=60)
        if check.returncode != 0:
            _espeak_failed(name, check)

    def speak(self, text: str) -> Speech:
        return espeak(text, self.voice)

    def describe(self) -> str:
        return f"espeak-ng voice {self.voice.name}"


class Metered:
    """An image or speech backend plus what every call needs, as `Model` is for text:
    the budget (checked before the call, with its known cost), the cost and one row in
    genlab's calls ledger."""

    def __init__(self, backend: ImageBackend | SpeechBackend, *, store=None, budget=None, source: str | None = None):
        from genlab.store import Store

        self.backend = backend
        self.spec = backend.spec
        self.store = store if store is not None else Store()
        self.budget = budget
        self.source = source

    def warm_up(self) -> None:
        """The backend's check before long work, where it has one (a plugin's backend need not)."""
        if hasattr(self.backend, "warm_up"):
            self.backend.warm_up()

    def picture(self, request: PictureRequest) -> bytes:
        return self._call(lambda: self.backend.picture(request), request.prompt, images=1)

    def speak(self, text: str) -> Speech:
        return self._call(lambda: self.backend.speak(text), text, characters=len(text))

    def _call(self, run, text: str, *, images: int = 0, characters: int = 0):
        from genlab.models.backend import redact
        from genlab.models.cost import media_cost_usd
        from genlab.models.response import Usage
        from genlab.store import CallRecord

        backend = self.backend
        cost = media_cost_usd(backend.model_id or backend.spec, images=images, characters=characters, free=backend.free)
        held = self.budget.reserve_usd(backend.model_id or backend.spec, backend.free, cost) if self.budget else None
        start, error = time.perf_counter(), None
        try:
            return run()
        except BaseException as exc:
            error = str(exc) or type(exc).__name__
            raise
        finally:
            if held is not None:
                self.budget.settle(held, Usage(), cost if error is None else 0.0)
            try:
                self.store.log_call(CallRecord(
                    model=redact(self.spec), request_hash=hashlib.sha256(text.encode()).hexdigest()[:32],
                    prompt_tokens=0, cached_tokens=0, completion_tokens=0, latency_s=time.perf_counter() - start,
                    cost_usd=cost if error is None else None, source=self.source, error=redact(error) if error else None))
            except GenlabError:
                pass      # the picture is worth more than its log row
