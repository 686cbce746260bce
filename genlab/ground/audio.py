"""Speak a two-host script offline with espeak-ng, one voice per host, into one WAV file.

espeak-ng (Debian's package; `make` installs it where missing) synthesises each turn to
16-bit mono PCM; the turns are joined with a short pause. The two voices differ in
variant, accent and pitch (a lower male US voice and a higher female UK voice) so a
listener, and the test that measures their pitch, can tell them apart.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

from genlab.errors import ConfigError
from genlab.ground.outputs import Turn
from genlab.models.media import Voice, espeak

PAUSE_S = 0.35
VOICES = (Voice("en-us+m3", 35, 165), Voice("en-gb+f4", 70, 170))


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
    frames, transcript, rate, seconds = [], [], None, 0.0
    for turn in turns:
        speech = espeak(turn.text, voice_of[turn.speaker])
        if rate is None:
            rate = speech.sample_rate
            pause = b"\0\0" * int(rate * PAUSE_S)
        pcm, length = speech.pcm, speech.seconds
        transcript.append({"speaker": turn.speaker, "voice": voice_of[turn.speaker].name, "text": turn.text,
                           "citations": list(turn.citations), "start_s": round(seconds, 3),
                           "end_s": round(seconds + length, 3)})
        frames += [pcm, pause]
        seconds += length + PAUSE_S
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(frames))
    record = {"audio": str(path), "duration_s": round(seconds, 3), "sample_rate": rate,
              "voices": {s: voice_of[s].name for s in speakers}, "turns": transcript}
    path.with_suffix(".json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    return record
