"""`genlab trailer`: a document, folder or notebook turned into a narrated video."""

from __future__ import annotations

from pathlib import Path

import typer

from genlab.cli.common import ModelOpt, app, budget_from, note_busy_cores, on_ctrl_c, out, stage_progress
from genlab.io import writable_folder
from genlab.trailer.make import TrailerConfig

DEFAULTS = TrailerConfig()


@app.command()
def trailer(
    sources: list[str] = typer.Argument(..., help="PDF, Markdown, text or HTML files, folders (a code base: "
                                        "README and docs first), or notebook:NAME."),
    output: Path = typer.Option(Path("trailer.mp4"), "--output", "-o", help="The MP4 to write; NAME.vtt, "
                                "NAME.storyboard.json and NAME.storyboard.html go beside it."),
    model: str = ModelOpt,
    scenes: int = typer.Option(DEFAULTS.scenes, "--scenes", min=1, max=40,
                               help="At most this many scenes from the sources (plus a logline and a closing card)."),
    images: str = typer.Option(DEFAULTS.images, "--images", help="Image backend (genlab models lists them)."),
    voice: str = typer.Option(DEFAULTS.voice, "--voice", help="Speech backend: espeak or espeak:VOICE."),
    size: str = typer.Option("x".join(map(str, DEFAULTS.size)), "--size", help="Video size, WIDTHxHEIGHT (even numbers)."),
    fps: int = typer.Option(DEFAULTS.fps, "--fps", min=1, max=60, help="Frames per second."),
    music: Path = typer.Option(None, "--music", help="An audio file (WAV, MP3, OGG, FLAC) looped under the "
                               "narration and lowered while someone speaks."),
    budget_usd: float = typer.Option(None, "--budget-usd", help="Stop before the model, picture and speech "
                                     "calls together cost more than this (paid backends)."),
    fresh: bool = typer.Option(False, "--fresh", help="Make every part again instead of reusing those stored "
                               "beside the video by an earlier or interrupted run (the default resumes)."),
) -> None:
    """Make a narrated video of the sources (H.264/AAC MP4 with WebVTT subtitles).

    The model writes a storyboard; each scene gets a picture and a narration.

    Example: genlab trailer examples/notebook/velmora/kestrel-island.pdf -o kestrel/trailer.mp4
    """
    from genlab.models import get_model
    from genlab.trailer import load_sources, make_trailer
    from genlab.trailer.make import check_output, parse_size

    writable_folder(check_output(output).parent, "--output")
    documents = load_sources(sources)
    note_busy_cores()
    config = TrailerConfig(scenes=scenes, images=images, voice=voice, size=parse_size(size), fps=fps, music=music)
    with on_ctrl_c(lambda: "interrupted; the parts made so far are kept beside the video, and the same command"
                           f"{' without --fresh' if fresh else ''} goes on from them"), stage_progress() as report:
        llm = get_model(model, source="trailer", budget=budget_from(budget_usd))
        result = make_trailer(llm, documents, output, config, fresh=fresh, progress=report)
    reused = sum(result.reused.values())
    out.print(f"wrote {result.video} ({result.duration_s:.1f} s: a logline card, {len(result.scenes) - 2} scenes, a "
              f"closing card), {result.subtitles}, "
              f"{result.storyboard_json}, {result.storyboard_html}")
    out.print("time: " + ", ".join(f"{stage} {s:.1f} s" for stage, s in result.seconds.items())
              + (f"; {reused} parts reused from an earlier run" if reused else ""))
