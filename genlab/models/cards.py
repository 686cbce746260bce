"""``cards``: the offline image backend. Each picture is a designed card drawn with Pillow,
not a generated image: a background from the scene's mood (a palette, a diagonal
gradient and a few soft shapes placed by a hash of the title, so every scene looks
different and the same scene always looks the same), the scene's title, and a short
quote from the source. Pillow's bundled font is used, so nothing depends on the fonts a
system has.
"""

from __future__ import annotations

import hashlib
import io
import random

from genlab.models.media import ImageBackend, PictureRequest

#: mood → (top-left colour, bottom-right colour, accent: the text, dark on the light palettes)
PALETTES = {
    "calm": ((24, 62, 92), (92, 156, 170), (222, 238, 235)),
    "hopeful": ((232, 150, 84), (250, 214, 140), (66, 34, 12)),
    "mysterious": ((22, 16, 48), (84, 54, 120), (206, 190, 255)),
    "tense": ((64, 10, 16), (168, 46, 36), (255, 214, 196)),
    "joyful": ((246, 92, 120), (252, 196, 70), (58, 12, 34)),
    "somber": ((30, 32, 38), (96, 102, 114), (226, 228, 232)),
}


class CardsBackend(ImageBackend):
    spec = "cards"
    free = True

    def picture(self, request: PictureRequest) -> bytes:
        image = draw_card(request)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def describe(self) -> str:
        return "designed cards drawn offline with Pillow (mood palette, title, quote); not generated pictures"


def draw_card(request: PictureRequest):
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    width, height = request.size
    start, end, accent = PALETTES.get(request.mood, PALETTES["calm"])
    # Diagonal gradient: each pixel's weight is its position along the diagonal.
    ramp = Image.linear_gradient("L").resize((width, height))
    ramp = Image.blend(ramp, ramp.transpose(Image.Transpose.ROTATE_90).resize((width, height)), 0.5)
    image = Image.composite(Image.new("RGB", (width, height), end), Image.new("RGB", (width, height), start), ramp)

    seed = int(hashlib.sha256(f"{request.title}|{request.mood}".encode()).hexdigest()[:8], 16)
    rng = random.Random(seed)
    shapes = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(shapes)
    for _ in range(5):
        radius = rng.randint(height // 8, height // 2)
        x, y = rng.randint(0, width), rng.randint(0, height)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(*accent, rng.randint(18, 42)))
    image = Image.alpha_composite(image.convert("RGBA"), shapes.filter(ImageFilter.GaussianBlur(height // 40)))

    draw = ImageDraw.Draw(image)
    margin = width // 12
    title_font = ImageFont.load_default(size=max(16, height // 11))
    quote_font = ImageFont.load_default(size=max(12, height // 26))
    title = _wrap(draw, request.title, title_font, width - 2 * margin)
    draw.multiline_text((margin, height * 0.30), title, font=title_font, fill=accent, spacing=height // 60)
    title_bottom = draw.multiline_textbbox((margin, height * 0.30), title, font=title_font, spacing=height // 60)[3]
    draw.line((margin, title_bottom + height // 30, margin + width // 6, title_bottom + height // 30),
              fill=accent, width=max(2, height // 180))
    if request.quote:
        quote = _wrap(draw, f"“{request.quote}”", quote_font, width - 2 * margin)
        draw.multiline_text((margin, title_bottom + height // 15), quote, font=quote_font,
                            fill=(*accent, 220), spacing=height // 90)
    return image.convert("RGB")


def _wrap(draw, text: str, font, width: int) -> str:
    """``text`` in lines no wider than ``width`` pixels in ``font`` (a word wider than that
    gets a line of its own): the fonts have a least size, so a fixed count of characters
    per line runs off a small frame."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return "\n".join(lines)
