"""Encode a trailer: each scene's picture for the length of its narration, with a slow zoom,
crossfades between scenes, H.264 video and AAC audio in an MP4 that browsers play
(yuv420p, the index at the front), and WebVTT subtitles beside it.

PyAV's wheels carry FFmpeg's libraries (libx264, aac), so no system ffmpeg is needed.
The timeline is the narration's: scene i lasts its speech plus `GAP_S` of silence, the
video has exactly as many frames as that audio, and the subtitles use the same times.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from genlab.models.media import Speech

GAP_S = 0.4          # silence after each scene's narration
CROSSFADE_S = 0.5    # the last frames of a scene blend into the next one's first
ZOOM = 0.06          # the picture grows (or shrinks, every other scene) by this much over a scene
SAMPLE_RATE = 24000  # narration is resampled to one rate for the AAC track


@dataclass(frozen=True)
class Clip:
    picture: bytes       # PNG (any size: it is fitted to the video)
    speech: Speech
    subtitle: str

    @property
    def seconds(self) -> float:
        return self.speech.seconds + GAP_S


@dataclass(frozen=True)
class Timing:
    start_s: float
    end_s: float


def timeline(clips: list[Clip]) -> list[Timing]:
    times, start = [], 0.0
    for clip in clips:
        times.append(Timing(start, start + clip.seconds))
        start += clip.seconds
    return times


def encode(clips: list[Clip], path: Path, size: tuple[int, int] = (1280, 720), fps: int = 24,
           music: np.ndarray | None = None, progress=None) -> list[Timing]:
    """Write ``path`` (MP4) from ``clips``, with ``music`` (from `read_music`) under the
    narration; return each clip's times. Written to a temporary name first and renamed
    when complete, so a crash leaves no file that looks finished."""
    import av

    times = timeline(clips)
    track = soundtrack(clips, times, music)
    partial = path.with_name(path.name + ".partial")
    container = av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"})
    try:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        # ultrafast: over 5x real time at 1280x720 on two cores (veryfast: under 4x), at about
        # 0.4 Mbit/s for cards; stillimage suits pictures that barely move.
        video.options = {"preset": "ultrafast", "crf": "23", "tune": "stillimage"}
        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        audio.options = {"aac_coder": "fast"}     # FFmpeg's default coder takes a third of the time here
        pictures = [_fitted(clip.picture, size) for clip in clips]
        frame_index, audio_samples = 0, 0
        for i, (clip, timing) in enumerate(zip(clips, times)):
            last = round(timing.end_s * fps)
            count = last - frame_index
            fade = min(round(CROSSFADE_S * fps), count // 3) if i + 1 < len(clips) else 0
            for n in range(count):
                frame = _zoomed(pictures[i], n / max(count - 1, 1), zoom_in=i % 2 == 0)
                if fade and n >= count - fade:
                    weight = round(256 * (n - (count - fade) + 1) / (fade + 1))
                    this = frame.to_ndarray(format="rgb24").astype(np.uint16)
                    after = _zoomed(pictures[i + 1], 0.0, zoom_in=(i + 1) % 2 == 0).to_ndarray(format="rgb24")
                    blend = (this * (256 - weight) + after.astype(np.uint16) * weight) >> 8
                    frame = av.VideoFrame.from_ndarray(blend.astype(np.uint8), format="rgb24")
                frame.pts = frame_index + n
                container.mux(video.encode(frame))
            frame_index = last
            samples = track[audio_samples:round(timing.end_s * SAMPLE_RATE)]
            sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout="mono")
            sound.sample_rate, sound.pts = SAMPLE_RATE, audio_samples
            container.mux(audio.encode(sound))
            audio_samples += len(samples)
            if progress:
                progress(i + 1, len(clips))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
        container.close()         # writes the index: a full disk can fail here too
    except BaseException:
        with contextlib.suppress(Exception):    # closing flushes, which fails again on a full disk
            container.close()
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return times


#: Music gain while nobody speaks, and while someone does (it is lowered, "ducked", under the
#: voice), with a linear ramp of DUCK_RAMP_S between the two.
MUSIC_GAIN, DUCKED_GAIN, DUCK_RAMP_S = 0.35, 0.08, 0.1


def soundtrack(clips: list[Clip], times: list[Timing], music: np.ndarray | None = None) -> np.ndarray:
    """The whole audio track (int16 at SAMPLE_RATE): each narration at its scene's start,
    silence after it, and the music looped under everything, ducked while someone speaks."""
    total = round(times[-1].end_s * SAMPLE_RATE) if times else 0
    voice = np.zeros(total, dtype=np.float32)
    speaking = np.zeros(total, dtype=np.float32)
    for clip, timing in zip(clips, times):
        start = round(timing.start_s * SAMPLE_RATE)
        samples = _resampled(clip.speech, SAMPLE_RATE)[:total - start]
        voice[start:start + len(samples)] = samples
        speaking[start:start + len(samples)] = 1.0
    if music is not None and len(music) and total:
        ramp = max(1, round(DUCK_RAMP_S * SAMPLE_RATE))
        # A moving average turns the on/off speech mask into ramps of DUCK_RAMP_S.
        duck = np.convolve(np.pad(speaking, (ramp // 2, ramp - 1 - ramp // 2), mode="edge"),
                           np.ones(ramp, dtype=np.float32) / ramp, mode="valid")
        gain = MUSIC_GAIN + (DUCKED_GAIN - MUSIC_GAIN) * duck
        looped = np.resize(music.astype(np.float32), total)
        voice += looped * gain
    return np.clip(voice, -32768, 32767).astype(np.int16)


def read_music(path: Path) -> np.ndarray:
    """Decode any audio file PyAV reads (WAV, MP3, OGG, FLAC…) to int16 mono at SAMPLE_RATE."""
    import av

    from genlab.errors import ConfigError

    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such music file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ConfigError(f"{path}: has no audio stream; give a WAV, MP3, OGG or FLAC file as --music")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                      for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.FFmpegError as exc:
        raise ConfigError(f"{path}: not an audio file genlab can read ({exc}); give a WAV, MP3, OGG or FLAC file") from exc
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    if not len(samples):
        raise ConfigError(f"{path}: the music file has no sound in it")
    return samples.astype(np.int16)


def subtitles(clips: list[Clip], times: list[Timing]) -> str:
    """WebVTT cues: each scene's narration over its speech (not its trailing silence)."""
    cues = ["WEBVTT", ""]
    for n, (clip, timing) in enumerate(zip(clips, times), 1):
        cues += [str(n), f"{_vtt_time(timing.start_s)} --> {_vtt_time(timing.start_s + clip.speech.seconds)}",
                 clip.subtitle, ""]
    return "\n".join(cues)


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}.{millis % 1000:03d}"


def _fitted(png: bytes, size: tuple[int, int]) -> np.ndarray:
    """The picture cropped to the video's aspect and scaled to its size: (height, width, 3) uint8."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(ImageOps.fit(image.convert("RGB"), size, Image.Resampling.LANCZOS))


def _zoomed(picture: np.ndarray, t: float, zoom_in: bool):
    """The frame at fraction ``t`` of a scene, in the encoder's yuv420p: a centred crop that
    narrows (or widens) with t, scaled back up by FFmpeg's swscale, which does the crop's
    scaling and the colour conversion in one pass (about 3x faster than Pillow's resize)."""
    import av

    height, width = picture.shape[:2]
    scale = 1 + ZOOM * (t if zoom_in else 1 - t)
    crop_w, crop_h = 2 * round(width / scale / 2), 2 * round(height / scale / 2)
    return _scaled_crop(_Frozen(picture), crop_w, crop_h)


class _Frozen:
    """An array hashed by identity, so that lru_cache can key on it."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __hash__(self) -> int:
        return id(self.array)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Frozen) and other.array is self.array


@lru_cache(maxsize=4)
def _scaled_crop(frozen: _Frozen, crop_w: int, crop_h: int):
    """The centred crop scaled to the picture's size. Cached: the crop grows by whole pixels,
    so neighbouring frames often share one."""
    import av

    picture = frozen.array
    height, width = picture.shape[:2]
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    crop = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture[top:top + crop_h, left:left + crop_w]), format="rgb24")
    return crop.reformat(width=width, height=height, format="yuv420p", interpolation="BILINEAR")


def _resampled(speech: Speech, rate: int) -> np.ndarray:
    """The speech as int16 samples at ``rate`` (linear interpolation: enough for a voice)."""
    samples = np.frombuffer(speech.pcm, dtype="<i2")
    if speech.sample_rate == rate or not len(samples):
        return samples.astype(np.int16)
    positions = np.arange(round(len(samples) * rate / speech.sample_rate)) * speech.sample_rate / rate
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.int16)
