"""`genlab trailer`: a PDF written for the test becomes a narrated MP4, decoded and checked as a
viewer's player would read it; storyboard files; resuming; bad input. Real embedded model,
real espeak-ng, real PyAV."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from genlab.errors import ConfigError
from genlab.ground.sources import read_source
from genlab.models import get_backend
from genlab.store import Store
from genlab.trailer import TrailerConfig, load_sources, make_trailer
from genlab.trailer.segment import Segment, merge, segments
from genlab.trailer.video import GAP_S
from tests.conftest import free_port, install_plugin
from tests.pdf_writer import write_pdf
from tests.test_cli import genlab

#: Three chapters over five pages; chapters 1 and 3 run onto a second page.
BOOK = [
    ["Chapter 1: The Keeper", "Mara Lund kept the Harrow light for forty winters.",
     "Every night she climbed the ninety steps to wind the lamp."],
    ["She wrote each passing ship into a green ledger.", "The ledger is now kept in the town museum."],
    ["Chapter 2: The Storm", "In the winter of 1903 a storm broke the old sea wall.",
     "The harbour flooded and the fishing fleet was lost."],
    ["Chapter 3: The New Wall", "The town built a new wall of granite in 1909.",
     "It is one and a half kilometres long."],
    ["Children still race along its top on the first day of summer.", "The race ends at the lighthouse door."],
]
CHAPTER_PAGES = [(1, 2), (3,), (4, 5)]
SIZE, FPS = (640, 360), 12


def _cues(vtt: str) -> list[tuple[float, float, str]]:
    seconds = lambda t: sum(float(x) * 60 ** i for i, x in enumerate(reversed(t.split(":"))))  # noqa: E731
    return [(seconds(a), seconds(b), text) for a, b, text in
            re.findall(r"(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)\n(.+)", vtt)]


def _frame_at(path: Path, t: float) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time >= t:
                return frame.to_ndarray(format="rgb24").astype(int)
    raise AssertionError(f"no frame at {t} s")


@pytest.fixture(scope="module")
def book_trailer(tmp_path_factory):
    """One trailer of BOOK on the embedded model, made once for the checks below."""
    folder = tmp_path_factory.mktemp("trailer")
    pdf = write_pdf(folder / "book.pdf", BOOK, title="The Harrow Light")
    home = folder / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENLAB_HOME", str(home))
        from genlab.models import get_model

        model = get_model("local", store=Store(home / "genlab.db"), source="test")
        result = make_trailer(model, load_sources([str(pdf)]), folder / "out" / "trailer.mp4",
                              TrailerConfig(size=SIZE, fps=FPS))
        again = make_trailer(model, load_sources([str(pdf)]), folder / "out" / "trailer.mp4",
                             TrailerConfig(size=SIZE, fps=FPS))
        calls = {r["model"]: r["n"] for r in model.store.execute("SELECT model, COUNT(*) AS n FROM calls GROUP BY model")}
    return result, again, calls


def test_segments_follow_chapters_and_keep_their_pages(tmp_path):
    document = read_source(write_pdf(tmp_path / "book.pdf", BOOK))
    found = segments([document], 6)
    assert [s.title for s in found] == ["Chapter 1: The Keeper", "Chapter 2: The Storm", "Chapter 3: The New Wall"]
    assert [s.pages for s in found] == CHAPTER_PAGES
    assert "green ledger" in found[0].text and "race ends" in found[2].text


def test_markdown_headings_code_blocks_and_windows(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nIntro.\n\n## One\n\nFirst part.\n\n```bash\n# not a heading\n```\n\n## Two\n\nSecond.\n")
    assert [s.title for s in segments([read_source(notes)], 6)] == ["Notes", "One", "Two"]
    plain = tmp_path / "plain.txt"
    plain.write_text(" ".join(f"Sentence number {i} is here." for i in range(400)))
    windows = segments([read_source(plain)], 40)
    assert len(windows) > 3 and "".join(w.text for w in windows).replace(" ", "") == \
        plain.read_text().replace(" ", "")


def test_merging_covers_everything_in_order_and_within_the_scene_count():
    found = [Segment("a.pdf", f"A{i}", "x" * (100 + 40 * i), (i + 1,)) for i in range(7)]
    found += [Segment("b.md", f"B{i}", "y" * 150, (1,)) for i in range(5)]
    for scenes in (1, 2, 3, 5, 8, 12):
        merged = merge(found, scenes)
        assert len(merged) == min(scenes, len(found))
        assert "".join(s.text.replace("\n", "") for s in merged) == "".join(s.text for s in found)
    two = merge(found, 2)
    assert (two[0].source, two[1].source) == ("a.pdf", "b.md")     # a new source opens a new scene
    assert two[0].pages == tuple(range(1, 8)) and merge(found, 1)[0].pages == ()


def test_trailer_from_a_pdf_decodes_as_asked(book_trailer):
    result, _, _ = book_trailer
    scenes = result.scenes
    assert [s.kind for s in scenes] == ["logline", "scene", "scene", "scene", "closing"]
    with av.open(str(result.video)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name) == ("h264", "aac")
        assert (video.width, video.height, video.average_rate) == (*SIZE, FPS)
        assert video.codec_context.pix_fmt == "yuv420p"
        duration = container.duration / 1e6
    # The narration, spoken again independently, sets the length (each scene ends with GAP_S of silence).
    voice = get_backend("espeak", "speech")
    narration = sum(voice.speak(s.narration).seconds + GAP_S for s in scenes)
    assert abs(duration - narration) < 0.5
    assert abs(duration - result.duration_s) < 0.5

    # Frames from different scenes differ; frames inside one scene barely move.
    middle = [(t.start_s + t.end_s) / 2 for t in result.times]
    second, third = _frame_at(result.video, middle[1]), _frame_at(result.video, middle[2])
    assert np.abs(second - third).mean() > 10
    assert np.abs(second - _frame_at(result.video, middle[1] + 0.2)).mean() < 10


def test_subtitles_and_storyboard_match_the_scenes_and_cite_their_pages(book_trailer):
    result, _, _ = book_trailer
    cues = _cues(result.subtitles.read_text())
    assert result.subtitles.read_text().startswith("WEBVTT")
    assert len(cues) == len(result.scenes)
    for (start, end, text), scene, timing in zip(cues, result.scenes, result.times):
        assert abs(start - timing.start_s) < 0.01 and end <= timing.end_s and text == scene.narration
    board = json.loads(result.storyboard_json.read_text())
    assert board["video"] == "trailer.mp4" and board["subtitles"] == "trailer.vtt"
    chapters = [s for s in board["scenes"] if s["kind"] == "scene"]
    for scene, pages in zip(chapters, CHAPTER_PAGES):
        assert scene["source"] == "book.pdf" and scene["pages"] and set(scene["pages"]) <= set(pages)
        assert scene["mood"] in ("calm", "hopeful", "mysterious", "tense", "joyful", "somber")
    page = result.storyboard_html.read_text()
    assert page.count('class="scene"') == len(result.scenes) and 'src="trailer.mp4"' in page
    assert page.count("data:image/jpeg;base64,") == len(result.scenes)


def test_a_rerun_with_the_same_inputs_makes_nothing_again(book_trailer):
    result, again, calls = book_trailer
    cards = len(result.scenes)              # the closing card is genlab's: no storyboard row
    # A narration is made once per distinct text (the model may give two scenes the same words)
    # and found again for every scene that says it.
    voiced = len({s.narration for s in result.scenes})
    assert result.made == {"storyboard": cards - 1, "picture": cards, "narration": voiced, "video": 1}
    assert result.reused["narration"] == cards - voiced
    everything = {"storyboard": cards - 1, "picture": cards, "narration": cards, "video": 1}
    assert sum(again.made.values()) == 0 and again.reused == everything and again.seconds["encoding"] < 1
    # One model call per scene and the logline, one picture per card; none on the rerun.
    assert calls == {"local": cards - 1, "cards": cards, "espeak": voiced}
    assert [s.narration for s in again.scenes] == [s.narration for s in result.scenes]


class FailingImages:
    """Fault injection: the cards backend, failing at its third picture."""

    spec, model_id, free = "cards", "", True

    def __init__(self):
        self.inner, self.calls = get_backend("cards", "image"), 0

    def picture(self, request):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("picture backend went away")
        return self.inner.picture(request)


def test_an_interrupted_trailer_resumes_and_leaves_no_finished_looking_file(tmp_path, local, monkeypatch):
    from genlab.trailer import make

    sources = load_sources([str(write_pdf(tmp_path / "book.pdf", BOOK[:3]))])
    output = tmp_path / "trailer.mp4"
    real = make.get_backend
    monkeypatch.setattr(make, "get_backend", lambda spec, kind: FailingImages() if kind == "image" else real(spec, kind))
    with pytest.raises(RuntimeError, match="went away"):
        make_trailer(local, sources, output, TrailerConfig(size=SIZE, fps=FPS))
    assert not output.exists() and not list(tmp_path.glob("*.partial"))
    monkeypatch.setattr(make, "get_backend", real)
    resumed = make_trailer(local, sources, output, TrailerConfig(size=SIZE, fps=FPS))
    assert resumed.reused["storyboard"] == len(resumed.scenes) - 1 and resumed.reused["picture"] == 2
    assert resumed.made["storyboard"] == 0 and resumed.made["picture"] == len(resumed.scenes) - 2
    assert output.exists()


def test_a_video_the_disk_cannot_hold_leaves_no_partial_file(tmp_path):
    """A full disk while the video was written left the half-written NAME.mp4.partial behind:
    the clean-up closed the file first, which flushes it and failed again, so the removal never
    ran. A write past a file-size limit fails as one on a full disk does (EFBIG for ENOSPC):
    the real encoder, in a process of its own with that limit."""
    script = """if True:
        import io, resource, signal, sys
        from pathlib import Path
        from PIL import Image
        from genlab.models import get_backend
        from genlab.trailer.video import Clip, encode

        png = io.BytesIO()
        Image.new("RGB", (320, 180), "navy").save(png, "PNG")
        voice = get_backend("espeak", "speech")
        clips = [Clip(png.getvalue(), voice.speak(text), text) for text in ("The keeper climbs.", "The storm breaks.")]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # past the limit a write fails, rather than the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]),) * 2)
        try:
            encode(clips, Path(sys.argv[1]), (320, 180), 10)
        except OSError as exc:
            print(exc.strerror)
    """
    for limit in (8_000, 30_000):        # among the frames, and near the end (the video is about 33 kB)
        output = tmp_path / str(limit) / "trailer.mp4"
        output.parent.mkdir()
        result = subprocess.run([sys.executable, "-c", script, str(output), str(limit)], capture_output=True, text=True,
                                timeout=120)
        assert result.stdout.strip() == "File too large", result.stderr
        assert list(output.parent.iterdir()) == []


def test_ctrl_c_says_the_parts_made_are_kept(tmp_path, genlab_home):
    import sqlite3

    from tests.conftest import interrupted

    def parts_made() -> int:
        try:
            return sqlite3.connect(tmp_path / "trailer.parts.sqlite").execute("SELECT COUNT(*) FROM parts").fetchone()[0]
        except sqlite3.Error:
            return 0

    book = write_pdf(tmp_path / "book.pdf", BOOK[:3])
    result = interrupted(["trailer", str(book), "-o", str(tmp_path / "trailer.mp4"), "--size", "640x360"],
                         lambda: parts_made() >= 1)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("interrupted; the parts made so far are kept beside the video, "
                                                      "and the same command goes on from them")


def _encrypted(tmp_path: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(write_pdf(tmp_path / "plain.pdf", BOOK)).pages:
        writer.add_page(page)
    writer.encrypt("secret")
    with open(tmp_path / "locked.pdf", "wb") as out:
        writer.write(out)
    return tmp_path / "locked.pdf"


@pytest.mark.parametrize("case, fix", [
    ("missing", "missing.pdf: no such file or folder"),
    ("empty", "empty.pdf: the file is empty"),
    ("encrypted", "locked.pdf: the PDF is encrypted; save a decrypted copy"),
    ("textless", "blank.pdf: the PDF has no extractable text"),
    ("images", "unknown image spec 'dalle-nope'; use cards"),
    ("voice", "unknown speech spec 'robot'; use espeak[:VOICE]"),
    ("espeak-voice", "espeak-ng failed with voice 'nosuchvoice' (Error: The specified espeak-ng voice does not "
                     "exist.); `espeak-ng --voices` lists the voices this machine has"),
    ("key", "OPENAI_API_KEY is not set; create one at platform.openai.com/api-keys"),
    # An endpoint that cannot be reached was found only after the whole storyboard was written.
    ("images-unreachable", "check the URL and that the server is running"),
    ("voice-unreachable", "check the URL and that the server is running"),
    ("output", "genlab writes trailers as MP4; name the file with .mp4"),
    ("size", "--size 1281x720: give WIDTHxHEIGHT with even numbers"),
])
def test_bad_input_is_one_line_naming_the_fix_before_any_model_call(case, fix, tmp_path, genlab_home):
    book = write_pdf(tmp_path / "book.pdf", BOOK)
    (tmp_path / "empty.pdf").write_bytes(b"")
    write_pdf(tmp_path / "blank.pdf", [[], []])
    source = {"missing": tmp_path / "missing.pdf", "empty": tmp_path / "empty.pdf", "encrypted": _encrypted(tmp_path),
              "textless": tmp_path / "blank.pdf"}.get(case, book)
    options = {"images": ["--images", "dalle-nope"], "voice": ["--voice", "robot"], "size": ["--size", "1281x720"],
               "espeak-voice": ["--voice", "espeak:nosuchvoice"],
               "key": ["--images", "openai:gpt-image-1"],
               "images-unreachable": ["--images", f"http://127.0.0.1:{free_port()}/v1#cards"],
               "voice-unreachable": ["--voice", f"http://127.0.0.1:{free_port()}/v1#espeak"]}
    output = tmp_path / ("trailer.mov" if case == "output" else "trailer.mp4")
    result = genlab("trailer", str(source), "-o", str(output), *options.get(case, []))
    assert result.returncode == 1 and fix in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not output.exists() and not list(tmp_path.glob("*.partial"))
    db = genlab_home / "genlab.db"
    assert not db.exists() or Store(db).execute("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0


def test_a_notebook_is_a_source_with_its_pages(tmp_path, genlab_home):
    assert genlab("notebook", "create", "harrow").returncode == 0
    assert genlab("notebook", "add", "harrow", str(write_pdf(tmp_path / "book.pdf", BOOK))).returncode == 0
    documents = load_sources(["notebook:harrow"])
    assert [d.path.name for d in documents] == ["book.pdf"]
    assert [s.pages for s in segments(documents, 6)] == CHAPTER_PAGES
    with pytest.raises(ConfigError, match="no notebook"):
        load_sources(["notebook:nothing-here"])


#: Loaded beside NAME.storyboard.html in the browser: plays the page's video (muted, so no
#: gesture is needed) and writes what the page shows into #result for --dump-dom to print.
BROWSER_CHECK = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="board" src="BOARD" width="1000" height="800"></iframe>
<script>
document.getElementById("board").addEventListener("load", async () => {
  const page = document.getElementById("board").contentDocument, video = page.querySelector("video");
  const report = {scenes: page.querySelectorAll("section.scene").length,
                  titles: [...page.querySelectorAll("section.scene h2")].map(h => h.textContent),
                  pictures: [...page.querySelectorAll("section.scene img")].filter(i => i.naturalWidth > 0).length};
  video.muted = true;
  try { await video.play(); report.played = true; } catch (e) { report.error = String(e); }
  const start = performance.now();
  while (video.currentTime < 1.0 && performance.now() - start < 8000) await new Promise(r => setTimeout(r, 100));
  Object.assign(report, {readyState: video.readyState, duration: video.duration, currentTime: video.currentTime,
                         width: video.videoWidth, height: video.videoHeight, tracks: video.textTracks.length});
  document.getElementById("result").textContent = JSON.stringify(report);
});
</script></body></html>"""


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Chromium from the system's packages "
                    "(make test installs it: apt-get install chromium)")
def test_the_storyboard_page_shows_every_scene_and_its_video_plays_in_a_real_browser(book_trailer, tmp_path):
    import functools
    import html
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    result, _, _ = book_trailer
    folder = result.video.parent
    (folder / "check.html").write_text(BROWSER_CHECK.replace("BOARD", result.storyboard_html.name))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--autoplay-policy=no-user-gesture-required",
             "--virtual-time-budget=20000", "--dump-dom", f"http://127.0.0.1:{server.server_port}/check.html"],
            capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    found = re.search(r'<pre id="result">(.*?)</pre>', browser.stdout, re.S)
    assert found and found.group(1) != "pending", browser.stderr[-2000:]
    report = json.loads(html.unescape(found.group(1)))
    assert report["scenes"] == report["pictures"] == len(result.scenes)
    assert report["titles"] == [f"{n}. {s.title}" for n, s in enumerate(result.scenes, 1)]
    assert report.get("played") and report["readyState"] >= 2 and report["currentTime"] > 0
    assert abs(report["duration"] - result.duration_s) < 0.5 and (report["width"], report["height"]) == SIZE
    assert report["tracks"] == 1


def _tone(path: Path, seconds: float = 2.0, hz: float = 5000.0, rate: int = 44100) -> Path:
    import wave

    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        tone = (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
        out.writeframes(np.repeat(tone, 2).tobytes())        # stereo: the reader mixes it down
    return path


def test_music_is_looped_under_the_narration_and_lowered_while_someone_speaks(tmp_path):
    from genlab.trailer.video import DUCKED_GAIN, MUSIC_GAIN, SAMPLE_RATE, Clip, read_music, soundtrack, timeline

    voice = get_backend("espeak", "speech")
    clips = [Clip(b"", voice.speak(text), text) for text in ("The keeper climbs the tower.", "The storm breaks.")]
    times = timeline(clips)
    music = read_music(_tone(tmp_path / "tone.wav"))
    assert abs(len(music) / SAMPLE_RATE - 2.0) < 0.01
    under = soundtrack(clips, times, music).astype(float) - soundtrack(clips, times).astype(float)
    level = lambda t: np.abs(under[round(t * SAMPLE_RATE) - 600:round(t * SAMPLE_RATE) + 600]).max()  # noqa: E731
    speaking = (times[1].start_s + clips[1].speech.seconds / 2)
    silent = times[0].start_s + clips[0].speech.seconds + GAP_S / 2
    assert level(speaking) == pytest.approx(8000 * DUCKED_GAIN, rel=0.1)
    assert level(silent) == pytest.approx(8000 * MUSIC_GAIN, rel=0.1)
    assert level(times[-1].end_s - 0.05) > 0        # looped: still playing after the 2 s file ran out
    with pytest.raises(ConfigError, match="not an audio file genlab can read"):
        read_music(write_pdf(tmp_path / "book.pdf", BOOK))


def test_the_music_option_puts_sound_in_the_gaps(tmp_path, genlab_home):
    pdf = write_pdf(tmp_path / "book.pdf", BOOK[:3])
    result = genlab("trailer", str(pdf), "-o", str(tmp_path / "t.mp4"), "--size", "320x180", "--fps", "8",
                    "--music", str(_tone(tmp_path / "tone.wav")))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "t.vtt" in result.stdout
    board = json.loads((tmp_path / "t.storyboard.json").read_text())      # named after the video
    assert board["music"].endswith("tone.wav")
    with av.open(str(tmp_path / "t.mp4")) as container:
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
        rate = container.streams.audio[0].rate
    last_gap = sound[int((board["duration_s"] - 0.3) * rate):int((board["duration_s"] - 0.1) * rate)]
    assert np.abs(last_gap).max() > 0.05                    # float samples: the music, not silence
    missing = genlab("trailer", str(pdf), "-o", str(tmp_path / "u.mp4"), "--music", str(tmp_path / "nope.mp3"))
    assert missing.returncode == 1 and "nope.mp3: no such music file" in missing.stderr


def test_a_field_copied_from_the_worked_example_is_told_apart_from_one_about_the_segment():
    from genlab.trailer.storyboard import EXAMPLE_SCENE, copied_example

    segment = Segment("book.pdf", "Chapter 2: The Storm", "\n".join(BOOK[2]), (3,))
    assert copied_example(EXAMPLE_SCENE["title"], segment) and copied_example(EXAMPLE_SCENE["image_prompt"], segment)
    assert not copied_example("The storm of 1903 broke the old sea wall.", segment)
    assert not copied_example("A harbour flooded by the sea", segment)     # in neither: not the example's


def test_an_image_backend_plugin_paints_the_trailer(tmp_path, monkeypatch, local):
    """A package's `genlab.backends` entry point of kind image is found by its spec, listed,
    and its pictures are what the video shows; genlab itself is not changed."""
    from genlab.models import registry
    from genlab.models.registry import describe_entries

    source = (
        "import io\nfrom PIL import Image\nfrom genlab.models import BackendEntry\n"
        "from genlab.models.media import ImageBackend\n\n"
        "class Solid(ImageBackend):\n"
        "    free = True\n"
        "    def __init__(self, spec):\n"
        "        self.spec, self.colour = spec, spec.partition(':')[2]\n"
        "    def picture(self, request):\n"
        "        out = io.BytesIO()\n"
        "        Image.new('RGB', request.size, self.colour).save(out, format='PNG')\n"
        "        return out.getvalue()\n\n"
        "ENTRY = BackendEntry('solid', 'solid:COLOUR', 'one colour', Solid, prefixes=('solid:',), kind='image',\n"
        "                     status=lambda: 'ready')\n")
    install_plugin(tmp_path, monkeypatch, "solid_plugin", source, "solid = solid_plugin:ENTRY")
    try:
        assert ("solid:COLOUR", "one colour", "ready") in describe_entries("image")
        assert "solid:COLOUR" not in [usage for usage, _, _ in describe_entries("model")]
        result = make_trailer(local, load_sources([str(write_pdf(tmp_path / "book.pdf", BOOK[:2]))]),
                              tmp_path / "trailer.mp4", TrailerConfig(images="solid:red", size=SIZE, fps=FPS))
    finally:
        registry.plugins.cache_clear()
    middle = _frame_at(result.video, (result.times[1].start_s + result.times[1].end_s) / 2).mean(axis=(0, 1))
    assert middle[0] > 200 and middle[1] < 40 and middle[2] < 40          # red, as the plugin painted it


def test_a_code_base_is_read_readme_first_then_docs(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("src/a-notes.md", "docs/usage.md", "README.md", "CHANGES.txt", ".hidden/secret.md"):
        (tmp_path / name).write_text(f"# {name}\n\nSome text about {name}.\n")
    assert [d.path.relative_to(tmp_path).as_posix() for d in load_sources([str(tmp_path)])] == \
        ["README.md", "docs/usage.md", "CHANGES.txt", "src/a-notes.md"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_a_git_code_base_leaves_out_what_git_ignores_and_is_named_by_its_readme(tmp_path):
    """`pip install -e .` leaves an empty egg-info file, which stopped the trailer of a Python
    project; builds and run results are no part of the story either."""
    from genlab.trailer.make import work_title
    from genlab.trailer.storyboard import closing_card

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("build/\n*.egg-info/\nruns/\n")
    for name in ("README.md", "docs/usage.md", "docs/new.md", "build/lib/copy.md", "runs/r1/report.md",
                 "pkg.egg-info/dependency_links.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("" if name.endswith("links.txt") else f"# Tool {name}\n\nSome text.\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "README.md", "docs/usage.md"], check=True)  # new.md: not yet
    documents = load_sources([str(tmp_path)])
    assert [d.path.relative_to(tmp_path).as_posix() for d in documents] == ["README.md", "docs/new.md", "docs/usage.md"]
    assert work_title(documents) == "Tool README.md"
    assert [d.path.name for d in load_sources([str(tmp_path / "runs")])] == ["report.md"]   # asked for by name
    many = closing_card("Tool", [f"{n}.md" for n in range(9)])
    assert many.narration == "Tool. Made from 0.md, 1.md, 2.md and 6 more files."


@pytest.mark.parametrize("size", [(320, 180), (1280, 720)])
def test_a_cards_text_stays_inside_its_margins_at_any_size(size):
    """The fonts have a least size, so lines cut at a count of characters ran off a small frame."""
    from genlab.models.cards import PALETTES, draw_card
    from genlab.models.media import PictureRequest

    quote = "Velmora is a small harbour town on the northern shore of the Grey Sound, with a lighthouse."
    card = np.asarray(draw_card(PictureRequest("", "A short history of Velmora, and more", quote, "calm", size)))
    text = (np.abs(card.astype(int) - PALETTES["calm"][2]).sum(axis=2) < 60)   # pixels in the text colour
    margin = size[0] // 12
    assert text[:, margin:-margin].sum() > 100 and text[:, -margin + 2:].sum() == 0


def test_a_narration_that_loops_or_only_says_the_title_gives_way_to_the_sources_words():
    """A scripted model (control logic: which fields genlab replaces), a Markdown segment."""
    from genlab.models import Model
    from genlab.trailer.storyboard import looped, quote_of, write_logline, write_scene
    from tests.fake_backend import FakeBackend

    segment = Segment("history.md", "The great flood", "## The great flood\n\nOn the night of 3 March 1903 a "
                      "storm surge broke the old sea wall.\nThe lower town flooded.", (1,))

    def scene(narration: str):
        draft = {"title": "The great flood", "narration": narration, "image_prompt": "A storm surge at night",
                 "mood": "tense", "pages": [1]}
        return write_scene(Model(f"scripted: {narration}", FakeBackend([json.dumps(draft)])), segment)  # own cache

    kept = scene("One night in 1903 the sea broke through the old wall.")
    assert kept.narration == "One night in 1903 the sea broke through the old wall." and kept.replaced == ()
    assert kept.quote == "On the night of 3 March 1903 a storm surge broke the old sea wall."   # not the heading
    for says_nothing in ("The great flood", "The great flood, the great flood, the great flood, the great flood"):
        replaced = scene(says_nothing)
        assert replaced.narration == kept.quote and replaced.replaced == ("narration",)
    assert quote_of("See [the guide](docs/g.md#top) and `genlab ask` for **all** of it.") == \
        "See the guide and genlab ask for all of it."        # Markdown as words, for the card and the voice
    loop = "A short history of Velmora, and more, " * 5 + "a short, a"
    assert looped(loop) and not looped(kept.narration)
    logline = write_logline(Model("scripted: loop", FakeBackend([json.dumps({"logline": loop[:200]})])), [kept],
                            "Velmora")
    assert logline.narration == "Velmora." and logline.replaced == ("narration",)
    cut = ("When the old sea wall broke in the winter storm of 1903, the lower town flooded to a depth of two "
           "metres, the fishing fleet was lost at its moorings, and the people of Velmora began the long work of "
           "building a new wall of granite that still stands")
    logline = write_logline(Model("scripted: cut", FakeBackend([json.dumps({"logline": cut[:200]})])), [kept],
                            "Velmora")
    assert logline.narration == cut[:200].rstrip(" ,") + "…" and logline.replaced == ()   # cut by the length bound
