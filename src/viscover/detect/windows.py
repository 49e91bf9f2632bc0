"""Class-agnostic regions for object search (section 8): windows at several scales sliding over an image,
indexed beside the detector's boxes (`object_windows`). COCO's 80 classes miss most products a catalog holds
(lamps, rugs, shelves, cushions); the windows give object search a region near any of them, at the cost of 83
more regions per scene. `viscover eval lens` measures what that buys (docs/results/lens)."""

from __future__ import annotations

from viscover.box import Box
from viscover.detect.detections import Detection

# (window side as a share of the image's side, stride as a share of it): half-overlapping windows
SCALES = ((1 / 2, 1 / 4), (1 / 3, 1 / 6), (1 / 4, 1 / 8))
REGION = "region"  # a window's label: no detector named it
UNSCORED = 0.0  # a window's score: no detector judged it, so it never passes a detector threshold nor dominates


def windows(width: int, height: int) -> list[Detection]:
    """Every window of every scale over a `width` x `height` image, in its pixels."""
    found = []
    for side, stride in SCALES:
        steps = round((1 - side) / stride) + 1
        for row in range(steps):
            for column in range(steps):
                x0, y0 = column * stride * width, row * stride * height
                box = Box(x0, y0, min(width, x0 + side * width), min(height, y0 + side * height))
                found.append(Detection(box, REGION, UNSCORED))
    return found
