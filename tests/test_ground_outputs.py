"""Briefing, FAQ and the audio overview: grounded documents, and a WAV with two voices
that a pitch measurement can tell apart."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from genlab.errors import ConfigError
from genlab.ground.audio import VOICES, speak
from genlab.ground.outputs import Turn, briefing
from genlab.ground.retrieval import NotebookSearch


def median_pitch_hz(samples: np.ndarray, rate: int) -> float:
    """Median fundamental frequency of the voiced 40 ms frames, by autocorrelation."""
    frame = int(0.04 * rate)
    low, high = rate // 400, rate // 60                     # lags for 400 Hz … 60 Hz
    pitches = []
    loudness = np.abs(samples).mean()
    for start in range(0, len(samples) - frame, frame):
        chunk = samples[start:start + frame].astype(np.float64)
        if np.abs(chunk).mean() < loudness:                 # skip quiet and unvoiced frames
            continue
        chunk -= chunk.mean()
        corr = np.correlate(chunk, chunk, "full")[frame - 1:]
        lag = low + int(np.argmax(corr[low:high]))
        if corr[lag] > 0.3 * corr[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))


def test_the_overview_has_two_distinguishable_voices(tmp_path):
    turns = [Turn("Alex", "Welcome to the overview. Today we talk about the harbour town of Velmora."),
             Turn("Sam", "Thanks. The lighthouse at Harrow Point was built in eighteen forty seven.", (1,)),
             Turn("Alex", "And who built it?"),
             Turn("Sam", "The engineer Ada Rennick, after the wreck of the schooner Marigold.", (1,))]
    record = speak(turns, tmp_path / "overview.wav")
    with wave.open(str(tmp_path / "overview.wav")) as wav:
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
        duration = wav.getnframes() / rate
    samples = np.frombuffer(frames, dtype=np.int16)
    assert duration == pytest.approx(record["duration_s"], abs=0.01)
    assert 8 < duration < 60
    assert json.loads((tmp_path / "overview.json").read_text()) == record
    assert record["voices"] == {"Alex": VOICES[0].name, "Sam": VOICES[1].name}
    pitch = {"Alex": [], "Sam": []}
    for turn in record["turns"]:
        assert turn["end_s"] > turn["start_s"]
        piece = samples[int(turn["start_s"] * rate):int(turn["end_s"] * rate)]
        assert np.abs(piece).max() > 1000                     # each turn is audible
        pitch[turn["speaker"]].append(median_pitch_hz(piece, rate))
    # The second voice is measurably higher on every one of its turns.
    assert min(pitch["Sam"]) > max(pitch["Alex"]) * 1.3, pitch
    assert record["turns"][1]["citations"] == [1]


def test_audio_is_written_as_wav_only(tmp_path):
    with pytest.raises(ConfigError, match=r"overview.mp3: genlab writes the audio overview as WAV"):
        speak([Turn("Alex", "Hello.")], tmp_path / "overview.mp3")


def test_the_briefing_has_a_section_per_source_with_valid_citations(velmora, local):
    document = briefing(local, NotebookSearch(velmora))
    assert [s.heading for s in document.sections] == [s.title for s in velmora.sources()]
    citations = document.citations()
    markdown = document.to_markdown()
    texts = {s.path: velmora.source_text(s.id) for s in velmora.sources()}
    for n, passage in enumerate(citations, 1):
        assert f"[{n}]" in markdown
        assert texts[passage.source][passage.start:passage.end] == passage.text
    # Each section only cites passages of its own source: that is all it was shown.
    for section in document.sections:
        for support in section.answer.supports:
            assert all(section.answer.chunks[i].title == section.heading for i in support.chunk_indices)


def test_faq_items_are_grounded_questions(velmora, tmp_path):
    from tests.test_cli import genlab

    result = genlab("notebook", "faq", "velmora", "--items", "2", "--out", str(tmp_path / "faq.md"))
    assert result.returncode == 0, result.stderr
    sections = json.loads((tmp_path / "faq.json").read_text())["sections"]   # written beside the Markdown
    assert 1 <= len(sections) <= 2
    for section in sections:
        assert section["heading"] and not section["abstained"] and section["grounding_metadata"]["grounding_supports"]
    assert len({s["heading"] for s in sections}) == len(sections)
    markdown = (tmp_path / "faq.md").read_text()
    assert all(f"**Q: {s['heading']}**" in markdown for s in sections) and "## Sources" in markdown


@pytest.mark.parametrize("reply, question", [
    # the embedded model's own, for the example notebook's audio overview
    ("What is the answer to this question? What is the name of the island that is named after the kestrels?",
     "What is the name of the island that is named after the kestrels?"),
    ('"When does the ferry leave?"\nIt leaves at nine.', "When does the ferry leave?"),
    ("Is the library open on Sundays? If so, when?", "Is the library open on Sundays?"),
])
def test_a_faq_question_is_the_one_the_reply_asks(reply, question):
    from genlab.ground.outputs import the_question

    assert the_question(reply) == question
