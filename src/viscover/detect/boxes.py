"""Boxes and detections: the records every detector returns, and the geometry the paper's rules need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchvision

from viscover.errors import BadCropError


@dataclass(frozen=True)
class Detection:
    """One object: a box in image pixels (x0, y0, x1, y1), its label and the detector's confidence."""

    box: tuple[float, float, float, float]
    label: str
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def check_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """A box that lies inside a widthxheight image with positive area, or a clear error."""
    if len(box) != 4:
        raise BadCropError(f"a box needs 4 numbers (x0, y0, x1, y1), got {list(box)}")
    x0, y0, x1, y1 = map(float, box)
    if not (np.isfinite([x0, y0, x1, y1]).all() and x1 > x0 and y1 > y0):
        raise BadCropError(f"box {list(box)} has no area (need x0 < x1 and y0 < y1)")
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise BadCropError(f"box {list(box)} lies outside the {width}x{height} image")
    return x0, y0, x1, y1


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (Nx4) with every box in `b` (Mx4), as an NxM array."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return torchvision.ops.box_iou(
        torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    ).numpy()


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_detections: int
) -> np.ndarray:
    """Indices kept by per-class NMS, best first."""
    keep = torchvision.ops.batched_nms(
        torch.as_tensor(boxes, dtype=torch.float32),
        torch.as_tensor(scores, dtype=torch.float32),
        torch.as_tensor(classes, dtype=torch.int64),
        iou,
    )
    return keep[:max_detections].numpy()


def clip_detections(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, labels: Sequence[str], width: int, height: int
) -> list[Detection]:
    """Records for detector outputs, boxes clipped to the image and empty ones dropped."""
    boxes = np.clip(boxes, 0, [width, height, width, height])
    return [
        Detection(tuple(round(float(v), 2) for v in box), labels[int(c)], round(float(s), 4))
        for box, s, c in zip(boxes, scores, classes, strict=True)
        if box[2] > box[0] and box[3] > box[1]
    ]


def dominant_object(
    detections: Sequence[Detection], width: int, height: int, min_area: float = 0.25, min_score: float = 0.9
) -> Detection | None:
    """The paper's dominant visual object (section 6): after NMS, the largest box if it covers at least
    `min_area` of the image or its score is at least `min_score`."""
    if not detections:
        return None
    largest = max(detections, key=lambda d: (d.area, d.score))
    if largest.area >= min_area * width * height or largest.score >= min_score:
        return largest
    return None


def pad_box(box: Sequence[float], context: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The box grown by `context` of its size on every side (tight boxes lack context, section 6),
    clipped to the image, as whole pixels."""
    x0, y0, x1, y1 = box
    dx, dy = context * (x1 - x0), context * (y1 - y0)
    return (
        max(0, int(np.floor(x0 - dx))),
        max(0, int(np.floor(y0 - dy))),
        min(width, int(np.ceil(x1 + dx))),
        min(height, int(np.ceil(y1 + dy))),
    )
