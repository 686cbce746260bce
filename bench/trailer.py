"""genlab trailer: wall time per stage, encoding speed, the cost of a re-run, and what the
storyboard prompt's worked example changes in what the embedded model narrates.

Prints and writes bench/results/trailer.json (and trailer-still.png, one frame):

  * speed: a trailer of examples/notebook/velmora/kestrel-island.pdf (its three sections,
    plus the logline and closing cards) and a 6-scene trailer of the whole example folder,
    1280x720 at 24 fps on the embedded model: seconds per stage (storyboard, pictures,
    narration, encoding), encoding as a multiple of real time (the video's own length is
    the baseline), then the same command again (every part reused);
  * effect: each held-out segment's scene written by the embedded model with genlab's
    prompt (one worked example, then the segment) and with a prompt that only describes
    the fields, under the same JSON schema; the model's own fields are scored, before
    genlab replaces any that copied the example (counted as "copied_the_example"). A narration is "drawn from its segment" when
    the lexical check of `genlab.ground.check` passes (60 % of its content words and all
    its numbers are in the segment); it "narrates the instructions" when it uses words of
    the prompt's own (trailer, narration, JSON, picture, mood, scene, video) that its
    segment does not. Rates with 95 % Wilson intervals.

Held-out segments: the 79 topics of Python's language reference that every Python ships
(pydoc_data), each topic's first segment, and the sections of the example notebook's
sources and docs/ that were not looked at while the prompt was written (ferry.txt,
festival.md, library.html, docs/grounding.md, docs/specs.md). The prompt was written
looking only at kestrel-island.pdf and history.md.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, write  # noqa: E402
from genlab.evaluate.autorater import wilson_interval  # noqa: E402
from genlab.ground.support import lexical_support  # noqa: E402
from genlab.ground.sources import read_source  # noqa: E402
from genlab.models import get_model  # noqa: E402
from genlab.store import Store  # noqa: E402
from genlab.trailer import TrailerConfig, load_sources, make_trailer  # noqa: E402
from genlab.trailer.segment import Segment, document_segments  # noqa: E402
from genlab.trailer.storyboard import PROMPT_CHARS, SceneDraft, copied_example, scene_request  # noqa: E402

VELMORA = ROOT / "examples" / "notebook" / "velmora"
HELD_OUT_FILES = [VELMORA / "ferry.txt", VELMORA / "festival.md", VELMORA / "library.html",
                  ROOT / "docs" / "grounding.md", ROOT / "docs" / "specs.md"]
#: The prompt genlab's worked example replaced: the fields described, no example.
DESCRIBED_PROMPT = ("You are writing one scene of a short video trailer.\nSource text ({where}):\n{text}\n\n"
                    "Write the scene as JSON: a short title, one or two sentences of narration that tell a viewer "
                    "what this part is about, a prompt describing a picture for it, its mood, and the pages it uses.")
INSTRUCTION_WORDS = ("trailer", "narration", "json", "picture", "mood", "scene", "video")


def speed(home: Path) -> dict:
    model = get_model("local", store=Store(home / "genlab.db"), source="bench")
    runs = {}
    for name, sources, scenes in (("kestrel-island.pdf", [str(VELMORA / "kestrel-island.pdf")], 6),
                                  ("velmora folder", [str(VELMORA)], 6)):
        out = home / name.replace(" ", "-") / "trailer.mp4"
        rows = []
        for attempt in ("first", "again"):
            start = time.perf_counter()
            result = make_trailer(model, load_sources(sources), out, TrailerConfig(scenes=scenes))
            wall = time.perf_counter() - start
            rows.append({"run": attempt, "wall_s": round(wall, 2),
                         "stages_s": {k: round(v, 2) for k, v in result.seconds.items()},
                         "parts_made": result.made, "parts_reused": result.reused})
        runs[name] = {"cards": len(result.scenes), "video_s": round(result.duration_s, 2),
                      "encoding_x_real_time": round(result.duration_s / rows[0]["stages_s"]["encoding"], 2),
                      "bytes": out.stat().st_size, "runs": rows}
        print(f"{name}: {len(result.scenes)} cards, {result.duration_s:.1f} s of video; first run {rows[0]['wall_s']} s "
              f"{rows[0]['stages_s']}; encoding {runs[name]['encoding_x_real_time']}x real time; "
              f"again {rows[1]['wall_s']} s")
        if name == "kestrel-island.pdf":
            _still(out, result.times[2].start_s + 1.0, RESULTS / "trailer-still.png")
    return runs


def _still(video: Path, at_s: float, path: Path) -> None:
    import av

    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if frame.time >= at_s:
                frame.to_image().save(path)
                return


def held_out_segments() -> list[Segment]:
    from pydoc_data.topics import topics

    found = []
    with tempfile.TemporaryDirectory() as folder:
        for name in sorted(topics):
            path = Path(folder) / f"{name}.txt"
            path.write_text(topics[name])
            found.append(document_segments(read_source(path), 1)[0])
    for path in HELD_OUT_FILES:
        found += document_segments(read_source(path), 40)
    return found


def _described(segment: Segment) -> dict:
    request = scene_request(segment)
    text = segment.text if len(segment.text) <= PROMPT_CHARS else segment.text[:PROMPT_CHARS] + " …"
    request["messages"] = [{"role": "user", "content": DESCRIBED_PROMPT.format(where=segment.where, text=text)}]
    return request


def effect(home: Path) -> dict:
    model = get_model("local", store=Store(home / "genlab.db"), source="bench")
    segments = held_out_segments()
    results = {}
    for variant, build in (("described fields (no example)", _described), ("genlab: one worked example", scene_request)):
        drawn = echoes = valid = copied = 0
        examples = []
        start = time.perf_counter()
        for segment in segments:
            request = build(segment)
            reply = model.chat(request.pop("messages"), **request).text
            try:
                draft = SceneDraft.model_validate_json(reply)
            except ValueError:
                continue
            narration = draft.narration
            valid += 1
            copied += any(copied_example(text, segment) for text in (draft.title, draft.narration, draft.image_prompt))
            drawn += lexical_support(narration, segment.text)
            words = set(re.findall(r"[a-z]+", narration.lower()))
            echoes += any(w in words and w not in segment.text.lower() for w in INSTRUCTION_WORDS)
            if len(examples) < 3:
                examples.append({"segment": segment.where, "narration": narration})
        n = len(segments)
        results[variant] = {
            "segments": n, "valid": valid, "drawn_from_segment": drawn,
            "drawn_rate": round(drawn / n, 3), "drawn_ci95": [round(x, 3) for x in wilson_interval(drawn, n)],
            "copied_the_example": copied,
            "narrates_instructions": echoes, "echo_rate": round(echoes / n, 3),
            "echo_ci95": [round(x, 3) for x in wilson_interval(echoes, n)],
            "seconds": round(time.perf_counter() - start, 1), "examples": examples}
        r = results[variant]
        print(f"{variant}: drawn from segment {drawn}/{n} = {r['drawn_rate']:.1%} {r['drawn_ci95']}; "
              f"narrates the instructions {echoes}/{n} = {r['echo_rate']:.1%} {r['echo_ci95']}; valid {valid}/{n}")
    return results


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="genlab-bench-trailer-"))
    try:
        import os

        os.environ["GENLAB_HOME"] = str(home)
        write("trailer", {"model": "local (SmolLM2-135M-Instruct)", "size": "1280x720", "fps": 24,
                          "speed": speed(home), "storyboard_prompt_effect": effect(home)})
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
