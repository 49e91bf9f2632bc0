"""TensorFlow's SSD-MobileNetV1 COCO (quantized TFLite, post-processing inside the model): the paper's
SSD family, run with ai-edge-litert."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from viscover.config import Settings
from viscover.detect.detections import Detection, clip_detections
from viscover.detect.registry import DETECTORS, Detector, DetectorSpec, read_labels
from viscover.errors import WeightsUnavailableError
from viscover.model_files import ModelFile

MODEL = ModelFile(
    "ssd-mobilenet-v1-coco/detect.tflite",
    "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13",
    source="detect.tflite in https://storage.googleapis.com/download.tensorflow.org/models/tflite/"
    "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.zip",
)
LABELS = ModelFile(
    "ssd-mobilenet-v1-coco/labelmap.txt", "c7e79c855f73cbba9f33d649d60e1676eb0a974021a41696d1ac0d4b7f7e0211"
)


class TFLiteSSD(Detector):
    name = "ssd_mobilenet_v1_coco"

    def __init__(self, settings: Settings, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = MODEL.locate(settings)
        try:
            self._interpreter = Interpreter(str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise WeightsUnavailableError(f"{path} is not a TFLite model: {exc}") from exc
        # labelmap line 0 is "???"; the model's class 0 is line 1.
        self.labels = read_labels(LABELS.locate(settings).read_text().splitlines()[1:])
        (self._input,) = self._interpreter.get_input_details()
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]
        self._size = tuple(int(v) for v in self._input["shape"][1:3])
        self._lock = threading.Lock()  # one interpreter holds one set of tensors

    def detect(self, image: Image.Image, min_score: float = 0.3) -> list[Detection]:
        width, height = image.size
        pixels = np.asarray(image.resize(self._size[::-1], Image.Resampling.BILINEAR), dtype=np.uint8)[None]
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], pixels)
            self._interpreter.invoke()
            boxes, classes, scores, count = (self._interpreter.get_tensor(i)[0] for i in self._outputs)
        n = int(count)
        keep = scores[:n] >= min_score
        yxyx = boxes[:n][keep]
        xyxy = yxyx[:, [1, 0, 3, 2]] * np.array([width, height, width, height], dtype=np.float32)
        return clip_detections(xyxy, scores[:n][keep], classes[:n][keep], self.labels, width, height)


DETECTORS.register(
    DetectorSpec(
        "ssd_mobilenet_v1_coco",
        TFLiteSSD,
        "SSD-MobileNetV1 COCO, quantized TFLite 300x300 (TensorFlow model zoo); the paper's SSD family",
    )
)
