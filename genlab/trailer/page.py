"""``NAME.storyboard.html``: one page that shows the trailer's video (with its subtitles) and every
scene: its picture (inlined, so the page needs no other file but the video), title,
narration, times and the source pages it cites."""

from __future__ import annotations

import base64
import io
from html import escape

from genlab.trailer.storyboard import Scene
from genlab.trailer.video import Timing

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2rem auto; padding: 0 1rem; color: #222; }
video { width: 100%; background: #000; border-radius: 6px; }
.scene { display: grid; grid-template-columns: 320px 1fr; gap: 1rem; margin: 1.5rem 0; }
.scene img { width: 320px; border-radius: 4px; }
.scene h2 { margin: 0 0 .3rem; font-size: 1.1rem; }
.meta { color: #666; font-size: .85rem; }
"""


def storyboard_page(title: str, scenes: list[Scene], pictures: list[bytes], times: list[Timing],
                    video_name: str, subtitles_name: str) -> str:
    rows = []
    for n, (scene, picture, timing) in enumerate(zip(scenes, pictures, times), 1):
        cite = f'<div class="meta cite">Source: {escape(scene.citation)}</div>' if scene.kind == "scene" else ""
        if scene.replaced:
            cite += (f'<div class="meta">From the source, not the model: {escape(", ".join(scene.replaced))} '
                     "(the model copied the prompt's example)</div>")
        rows.append(
            f'<section class="scene" id="scene-{n}" data-kind="{scene.kind}">'
            f'<img alt="{escape(scene.title)}" src="data:image/jpeg;base64,{_thumbnail(picture)}">'
            f'<div><h2>{n}. {escape(scene.title)}</h2>'
            f'<div class="meta">{timing.start_s:.1f}–{timing.end_s:.1f} s · mood: {escape(scene.mood)}</div>'
            f'<p class="narration">{escape(scene.narration)}</p>{cite}'
            f'<div class="meta">Picture prompt: {escape(scene.image_prompt)}</div></div></section>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>'
            f'<video id="trailer" controls preload="auto" src="{escape(video_name)}">'
            f'<track kind="subtitles" srclang="en" label="English" src="{escape(subtitles_name)}" default></video>'
            + "".join(rows) + "</body></html>\n")


def _thumbnail(png: bytes, width: int = 640) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image = image.convert("RGB")
        image.thumbnail((width, width))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode()
