"""Speak a two-host script offline with espeak-ng, one voice per host, into one WAV file.

espeak-ng (Debian's package; `make` installs it where missing) synthesises each turn to
16-bit mono PCM; the turns are joined with a short pause. The two voices differ in
variant, accent and pitch (a lower male US voice and a higher female UK voice) so a
listener, and the test that measures their pitch, can tell them apart.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from genlab.errors import ConfigError
from genlab.ground.outputs import Turn

PAUSE_S = 0.35


@dataclass(frozen=True)
class Voice:
    name: str        # espeak-ng voice+variant
    pitch: int       # 0-99
    speed: int       # words per minute


VOICES = (Voice("en-us+m3", 35, 165), Voice("en-gb+f4", 70, 170))


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if not binary:
        raise ConfigError("espeak-ng is not installed; install it with `apt-get install espeak-ng` "
                          "(make test/run does this where it can)")
    return binary


def synthesize(text: str, voice: Voice) -> tuple[wave._wave_params, bytes]:
    """Return (WAV parameters, PCM frames) for ``text`` in ``voice``."""
    result = subprocess.run([espeak_binary(), "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed),
                             "--stdin", "--stdout"], input=text.encode("utf-8"), capture_output=True, timeout=300)
    if result.returncode != 0 or not result.stdout:
        raise ConfigError(f"espeak-ng failed ({result.stderr.decode(errors='replace').strip() or result.returncode})")
    with wave.open(io.BytesIO(result.stdout)) as wav:
        return wav.getparams(), wav.readframes(wav.getnframes())


def check_output_path(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise ConfigError(f"{path}: genlab writes the audio overview as WAV; name the file with .wav "
                          "(convert with `ffmpeg -i overview.wav overview.mp3` if you need MP3)")
    return path


def speak(turns: list[Turn], path: Path) -> dict:
    """Write the conversation to ``path`` (.wav) and ``path``.json (transcript with times); return it."""
    path = check_output_path(path)
    speakers = list(dict.fromkeys(t.speaker for t in turns))
    if len(speakers) > len(VOICES):
        raise ConfigError(f"the script has {len(speakers)} speakers; genlab has {len(VOICES)} voices")
    voice_of = dict(zip(speakers, VOICES))
    frames, transcript, params, seconds = [], [], None, 0.0
    for turn in turns:
        turn_params, pcm = synthesize(turn.text, voice_of[turn.speaker])
        if params is None:
            params = turn_params
            pause = b"\0" * int(params.framerate * PAUSE_S) * params.sampwidth * params.nchannels
        length = len(pcm) / (params.framerate * params.sampwidth * params.nchannels)
        transcript.append({"speaker": turn.speaker, "voice": voice_of[turn.speaker].name, "text": turn.text,
                           "citations": list(turn.citations), "start_s": round(seconds, 3),
                           "end_s": round(seconds + length, 3)})
        frames += [pcm, pause]
        seconds += length + PAUSE_S
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(params.nchannels)
        out.setsampwidth(params.sampwidth)
        out.setframerate(params.framerate)
        out.writeframes(b"".join(frames))
    record = {"audio": str(path), "duration_s": round(seconds, 3), "sample_rate": params.framerate,
              "voices": {s: voice_of[s].name for s in speakers}, "turns": transcript}
    path.with_suffix(".json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    return record
