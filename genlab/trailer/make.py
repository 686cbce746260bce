"""Make a trailer: sources → segments → storyboard → pictures and narration → MP4, subtitles,
and its storyboard as JSON and as a page, all named after the MP4 (NAME.vtt,
NAME.storyboard.json, NAME.storyboard.html), so trailers written to one folder keep their own.

Every check that can fail on the user's input (sources, output name, backends, the voice
engine) runs before the first model call. Each finished part is stored at once
(`genlab.trailer.parts`), so an interrupted run resumes and a repeated one makes nothing
again; the video is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genlab.errors import ConfigError
from genlab.ground.sources import Document, Page, read_source
from genlab.models import Model, get_backend
from genlab.models.media import Metered, PictureRequest, Speech
from genlab.trailer.page import storyboard_page
from genlab.trailer.parts import Parts, digest
from genlab.trailer.segment import segments
from genlab.trailer.storyboard import Scene, closing_card, scene_request, write_logline, write_scene
from genlab.trailer.video import Clip, Timing, encode, read_music, subtitles, timeline


@dataclass(frozen=True)
class TrailerConfig:
    scenes: int = 6                      # at most this many source scenes, plus the logline and closing cards
    images: str = "cards"                # image backend spec (genlab models lists them)
    voice: str = "espeak"                # speech backend spec
    size: tuple[int, int] = (1280, 720)
    fps: int = 24
    music: Path | None = None            # an audio file looped under the narration, lowered while someone speaks


@dataclass
class TrailerResult:
    video: Path
    subtitles: Path
    storyboard_json: Path
    storyboard_html: Path
    scenes: list[Scene]
    times: list[Timing]
    seconds: dict[str, float] = field(default_factory=dict)     # wall time per stage
    made: dict[str, int] = field(default_factory=dict)          # parts made in this run, by stage
    reused: dict[str, int] = field(default_factory=dict)        # parts found from an earlier run

    @property
    def duration_s(self) -> float:
        return self.times[-1].end_s if self.times else 0.0


def check_output(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ConfigError(f"{path}: genlab writes trailers as MP4; name the file with .mp4")
    if path.exists() and path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name such as {path / 'trailer.mp4'}")
    return path


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' → (1280, 720); H.264 in yuv420p needs even sides."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) % 2 or int(height) % 2 \
            or not (64 <= int(width) <= 3840 and 64 <= int(height) <= 2160):
        raise ConfigError(f"--size {text}: give WIDTHxHEIGHT with even numbers from 64x64 to 3840x2160, e.g. 1280x720")
    return int(width), int(height)


def load_sources(sources: list[str]) -> list[Document]:
    """Read each SOURCE: a file, a folder (README and docs first) or ``notebook:NAME``."""
    from genlab.ground.notebook import expand_paths

    if not sources:
        raise ConfigError("give at least one source: a PDF, Markdown, text or HTML file, a folder, or notebook:NAME")
    documents = []
    for source in sources:
        if source.startswith("notebook:"):
            documents += notebook_documents(source.removeprefix("notebook:"))
        elif Path(source).is_dir():
            documents += [read_source(p) for p in sorted(expand_paths([Path(source)]), key=_code_base_order(Path(source)))]
        else:
            documents += [read_source(p) for p in expand_paths([Path(source)])]
    return documents


def work_title(documents: list[Document]) -> str:
    """What the trailer is called: the one document's title, a code base's README title,
    else the first titles."""
    if len(documents) == 1 or documents[0].path.name.lower().startswith("readme"):
        return documents[0].title
    titles = [d.title for d in documents]
    return ", ".join(titles) if len(titles) <= 3 else f"{titles[0]}, {titles[1]} and {len(titles) - 2} more"


def _code_base_order(root: Path):
    def rank(path: Path) -> tuple:
        relative = path.relative_to(root)
        first = 0 if relative.name.lower().startswith("readme") and len(relative.parts) == 1 else \
            1 if relative.parts[0].lower() in ("doc", "docs") else 2
        return first, str(relative)
    return rank


def notebook_documents(name: str) -> list[Document]:
    """The notebook's sources as documents, pages rebuilt from its chunks' offsets."""
    from genlab.ground.notebook import Notebook

    notebook = Notebook.open(name)
    try:
        chunks, _ = notebook.chunks()
        documents = []
        for source in notebook.sources():
            text = notebook.source_text(source.id)
            starts: dict[int, int] = {}
            for chunk in chunks:
                if chunk.source_id == source.id:
                    starts[chunk.page] = min(chunk.start, starts.get(chunk.page, chunk.start))
            numbers = sorted(starts)
            pages = tuple(Page(n, starts[n], starts[numbers[i + 1]] if i + 1 < len(numbers) else len(text))
                          for i, n in enumerate(numbers)) or (Page(1, 0, len(text)),)
            documents.append(Document(Path(source.path), source.kind, source.title, text, pages, ""))
    finally:
        notebook.close()
    if not documents:
        raise ConfigError(f"the notebook '{name}' has no sources; add some with `genlab notebook add {name} FILE`")
    return documents


def make_trailer(model: Model, documents: list[Document], output: Path, config: TrailerConfig = TrailerConfig(),
                 *, fresh: bool = False, progress=None) -> TrailerResult:
    """Make the trailer at ``output`` (.mp4) with the files beside it; ``progress(stage, done, total)``."""
    output = check_output(output)
    music = read_music(config.music) if config.music else None
    images, voice = (Metered(get_backend(spec, kind), store=model.store, budget=model.budget, source="trailer")
                     for spec, kind in ((config.images, "image"), (config.voice, "speech")))
    images.warm_up()   # an endpoint that cannot be reached fails now, not after the storyboard
    voice.warm_up()
    pieces = segments(documents, config.scenes)
    work = work_title(documents)
    output.parent.mkdir(parents=True, exist_ok=True)
    parts_path = output.with_suffix(".parts.sqlite")
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(parts_path) + suffix).unlink(missing_ok=True)
    parts = Parts(parts_path)
    seconds: dict[str, float] = {}
    report = progress or (lambda stage, done, total: None)
    try:
        # 1. Storyboard: one schema-bound row per segment, then the logline that sums them up.
        start = time.perf_counter()
        scenes = []
        for done, piece in enumerate(pieces, 1):
            inputs = {"model": model.name, "weights": model.backend.weights_tag(), "request": scene_request(piece),
                      "source": piece.source, "pages": piece.pages}
            row = parts.get_or_make("storyboard", inputs, lambda: json.dumps(write_scene(model, piece).to_dict()).encode())
            scenes.append(Scene.from_dict(json.loads(row)))
            report("storyboard", done, len(pieces) + 1)
        logline = parts.get_or_make("storyboard", {"model": model.name, "weights": model.backend.weights_tag(),
                                                   "logline": [s.to_dict() for s in scenes], "work": work},
                                    lambda: json.dumps(write_logline(model, scenes, work).to_dict()).encode())
        scenes = [Scene.from_dict(json.loads(logline)), *scenes,
                  closing_card(work, list(dict.fromkeys(d.path.name for d in documents)))]
        report("storyboard", len(pieces) + 1, len(pieces) + 1)
        seconds["storyboard"] = time.perf_counter() - start

        # 2. Pictures and 3. narration, one part per scene.
        start = time.perf_counter()
        pictures = []
        for done, scene in enumerate(scenes, 1):
            request = PictureRequest(scene.image_prompt, scene.title, scene.quote, scene.mood, config.size)
            pictures.append(parts.get_or_make("picture", {"images": config.images, "request": asdict(request)},
                                              lambda: images.picture(request)))
            report("pictures", done, len(scenes))
        seconds["pictures"] = time.perf_counter() - start
        start = time.perf_counter()
        speeches = []
        for done, scene in enumerate(scenes, 1):
            wav = parts.get_or_make("narration", {"voice": config.voice, "text": scene.narration},
                                    lambda: voice.speak(scene.narration).to_wav())
            speeches.append(Speech.from_wav(wav))
            report("narration", done, len(scenes))
        seconds["narration"] = time.perf_counter() - start

        # 4. Subtitles and storyboard files, then the video: its name appears last, when it is complete.
        clips = [Clip(p, s, scene.narration) for p, s, scene in zip(pictures, speeches, scenes)]
        times = timeline(clips)
        vtt = output.with_suffix(".vtt")
        vtt.write_text(subtitles(clips, times))
        board_json, board_html = output.with_suffix(".storyboard.json"), output.with_suffix(".storyboard.html")
        board_json.write_text(json.dumps({
            "title": work, "video": output.name, "subtitles": vtt.name, "duration_s": round(times[-1].end_s, 3),
            "model": model.name, "images": config.images, "voice": config.voice,
            "music": str(config.music) if config.music else None,
            "scenes": [{**scene.to_dict(), "start_s": round(t.start_s, 3), "end_s": round(t.end_s, 3)}
                       for scene, t in zip(scenes, times)]}, indent=2, ensure_ascii=False))
        board_html.write_text(storyboard_page(work, scenes, pictures, times, output.name, vtt.name))
        start = time.perf_counter()
        video = {"pictures": [digest(p) for p in pictures], "speech": [digest(s.pcm) for s in speeches],
                 "size": config.size, "fps": config.fps, "music": digest(music.tobytes()) if music is not None else None}
        if output.is_file() and parts.get("video", video) == output.name.encode():
            parts.reused["video"] += 1           # the same video is there already
        else:
            encode(clips, output, config.size, config.fps, music,
                   progress=lambda done, total: report("encoding", done, total))
            parts.put("video", video, output.name.encode())
        seconds["encoding"] = time.perf_counter() - start
    finally:
        parts.close()
    return TrailerResult(output, vtt, board_json, board_html, scenes, times, seconds, dict(parts.made), dict(parts.reused))
