"""Pictures of detections: boxes and labels drawn on the image, for `viscover detect --draw`."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from viscover.detect.detections import Detection

COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")


def draw_detections(image: Image.Image, detections: Sequence[Detection]) -> Image.Image:
    """A copy of `image` with each box outlined and captioned "label score", one colour per label."""
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(min(canvas.size) / 200))
    palette = {label: COLOURS[i % len(COLOURS)] for i, label in enumerate(dict.fromkeys(d.label for d in detections))}
    for d in detections:
        colour = palette[d.label]
        draw.rectangle(tuple(d.box), outline=colour, width=width)
        caption = f"{d.label} {d.score:.2f}"
        left, top, right, bottom = draw.textbbox((d.box.x0, d.box.y0), caption)
        lift = bottom - top + 2 * width
        y = d.box.y0 - lift if d.box.y0 >= lift else d.box.y0
        draw.rectangle((left, y, right + 2 * width, y + lift), fill=colour)
        draw.text((left + width, y + width), caption, fill="white")
    return canvas
