"""Detections: the record every detector returns, and the geometry the paper's rules need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from viscover.box import Box


@dataclass(frozen=True)
class Detection:
    """One object: its box in image pixels, its label and the detector's confidence."""

    box: Box
    label: str
    score: float


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (Nx4) with every box in `b` (Mx4), as an NxM array."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    import torch
    import torchvision

    return torchvision.ops.box_iou(
        torch.as_tensor(np.asarray(a), dtype=torch.float64), torch.as_tensor(np.asarray(b), dtype=torch.float64)
    ).numpy()


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_detections: int
) -> np.ndarray:
    """Indices kept by per-class NMS, best first."""
    import torch
    import torchvision

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
        Detection(Box(*(round(float(v), 2) for v in box)), labels[int(c)], round(float(s), 4))
        for box, s, c in zip(boxes, scores, classes, strict=True)
        if box[2] > box[0] and box[3] > box[1]
    ]


class Scored(Protocol):
    box: Box
    score: float


ScoredT = TypeVar("ScoredT", bound=Scored)


def dominant_object(
    objects: Sequence[ScoredT], width: int, height: int, min_area: float = 0.25, min_score: float = 0.9
) -> ScoredT | None:
    """The paper's dominant visual object (section 6): after NMS, the largest box if it covers at least
    `min_area` of the image or its score is at least `min_score`. Works on fresh and stored detections."""
    if not objects:
        return None
    largest = max(objects, key=lambda o: (o.box.area, o.score))
    if largest.box.area >= min_area * width * height or largest.score >= min_score:
        return largest
    return None
