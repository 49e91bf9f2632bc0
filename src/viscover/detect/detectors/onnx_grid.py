"""Single-stage COCO detectors exported to ONNX with raw grid outputs, run with ONNX Runtime:
YOLOX-Nano (the YOLO line the paper names as next to investigate) and NanoDet-m.

Both predict per grid cell at strides 8/16/32; this file turns the grids into boxes and runs NMS.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import onnxruntime as ort
from PIL import Image

from viscover.config import Settings
from viscover.detect.detections import Detection, clip_detections, non_max_suppression
from viscover.detect.registry import DETECTORS, Detector, DetectorSpec, read_labels
from viscover.errors import WeightsUnavailableError
from viscover.model_files import ModelFile

STRIDES = (8, 16, 32)
NMS_IOU = 0.6
MAX_DETECTIONS = 100


def grid_centres(size: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """(cell x, cell y, stride) rows for every cell of every level, in the models' output order."""
    cells, strides = [], []
    for stride in STRIDES:
        n = size // stride
        ys, xs = np.mgrid[0:n, 0:n]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1) + offset)
        strides.append(np.full(n * n, stride, dtype=np.float32))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides)[:, None]


class GridDetector(Detector):
    """Shared ONNX Runtime plumbing: session, square input, NMS, boxes back in image pixels."""

    size = 416
    model: ModelFile
    label_file: ModelFile

    def __init__(self, settings: Settings, threads: int) -> None:
        path = self.model.locate(settings)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # NanoDet's old export lists weights as inputs; ORT warns per weight
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unreadable models
            raise WeightsUnavailableError(f"{path} is not a loadable ONNX model: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self.labels = read_labels(self.label_file.locate(settings).read_text().splitlines())

    def detect(self, image: Image.Image, min_score: float = 0.3) -> list[Detection]:
        width, height = image.size
        tensor, scale = self._prepare(image)
        boxes, class_scores = self._decode(self._session.run(None, {self._input: tensor}))
        classes = class_scores.argmax(1)
        scores = class_scores[np.arange(len(classes)), classes]
        keep = scores >= min_score
        boxes, scores, classes = boxes[keep] / scale, scores[keep], classes[keep]
        kept = non_max_suppression(boxes, scores, classes, NMS_IOU, MAX_DETECTIONS)
        return clip_detections(boxes[kept], scores[kept], classes[kept], self.labels, width, height)

    @abstractmethod
    def _prepare(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """(1,3,size,size) float32 input, and the (x, y, x, y) scale from image pixels to input pixels."""

    @abstractmethod
    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (Nx4, input pixels) and per-class scores (NxC) for every grid cell."""


class YoloX(GridDetector):
    """Letterboxed (114 grey pad, top-left aligned), BGR 0-255; output per cell: dx, dy, log w, log h,
    objectness and class probabilities."""

    name = "yolox_nano"
    model = ModelFile(
        "yolox-nano/yolox_nano.onnx",
        "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
        url="https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
    )
    label_file = ModelFile(
        "yolox-nano/coco_classes.txt", "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84"
    )

    def _prepare(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        ratio = min(self.size / image.width, self.size / image.height)
        resized = image.resize(
            (max(1, round(image.width * ratio)), max(1, round(image.height * ratio))), Image.Resampling.BILINEAR
        )
        canvas = np.full((self.size, self.size, 3), 114, dtype=np.float32)
        canvas[: resized.height, : resized.width] = np.asarray(resized, dtype=np.float32)
        tensor = canvas[:, :, ::-1].transpose(2, 0, 1)[None]  # RGB → BGR, HWC → NCHW
        return np.ascontiguousarray(tensor), np.full(4, ratio, dtype=np.float32)

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        raw = outputs[0][0]
        cells, strides = grid_centres(self.size, 0.0)
        centres = (raw[:, :2] + cells) * strides
        half = np.exp(np.minimum(raw[:, 2:4], 10.0)) * strides / 2
        return np.concatenate([centres - half, centres + half], axis=1), raw[:, 4:5] * raw[:, 5:]


class NanoDet(GridDetector):
    """Stretched to 416x416, BGR normalised; outputs per level: class probabilities and, for each box side,
    a distribution over 0..7 strides from the cell centre (generalised focal loss)."""

    name = "nanodet_m"
    model = ModelFile(
        "nanodet-m/nanodet_m.onnx",
        "4b82da9944b88577175ee23a459dce2e26e6e4be573def65b1055dc2d9720186",
        source="nanodet_m.onnx from https://github.com/RangiLyu/nanodet (release v0.x)",
    )
    label_file = ModelFile("nanodet-m/coco.names", "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84")
    mean = np.array([103.53, 116.28, 123.675], dtype=np.float32)
    std = np.array([57.375, 57.12, 58.395], dtype=np.float32)
    bins = 8

    def _prepare(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        resized = np.asarray(image.resize((self.size, self.size), Image.Resampling.BILINEAR), dtype=np.float32)
        tensor = ((resized[:, :, ::-1] - self.mean) / self.std).transpose(2, 0, 1)[None]
        scale = np.array([self.size / image.width, self.size / image.height] * 2, dtype=np.float32)
        return np.ascontiguousarray(tensor), scale

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        levels = len(STRIDES)
        scores = np.concatenate([o[0] for o in outputs[:levels]])
        logits = np.concatenate([o[0] for o in outputs[levels:]]).reshape(-1, 4, self.bins)
        weights = np.exp(logits - logits.max(axis=2, keepdims=True))
        distances = (weights / weights.sum(axis=2, keepdims=True)) @ np.arange(self.bins, dtype=np.float32)
        cells, strides = grid_centres(self.size, 0.5)
        centres = cells * strides
        distances = distances * strides
        boxes = np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1)
        return boxes, scores


DETECTORS.register(
    DetectorSpec("yolox_nano", YoloX, "YOLOX-Nano COCO, ONNX 416x416 letterbox; the YOLO line the paper names next")
)
DETECTORS.register(DetectorSpec("nanodet_m", NanoDet, "NanoDet-m COCO, ONNX 416x416"))
