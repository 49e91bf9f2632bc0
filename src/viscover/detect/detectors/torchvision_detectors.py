"""The paper's two detector families as torchvision builds them: Faster R-CNN (ResNet-50 FPN) and SSD300
(VGG16), with COCO weights from the models directory, the torch hub cache, or a download when allowed.

`TorchDetector` also runs the detectors that `viscover detect train` makes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.transforms.functional import pil_to_tensor

from viscover.config import Settings
from viscover.detect.boxes import Detection, clip_detections
from viscover.detect.registry import Detector, DetectorSpec, register_detector
from viscover.model_files import torchvision_weights


class TorchDetector(Detector):
    """A torchvision detection model in eval mode; `labels[i]` names the model's class index i."""

    def __init__(self, name: str, model: nn.Module, labels: Sequence[str]) -> None:
        self.name, self.model, self.labels = name, model.eval(), tuple(labels)

    def detect(self, image: Image.Image, min_score: float = 0.3) -> list[Detection]:
        tensor = pil_to_tensor(image).float() / 255.0
        with torch.inference_mode():
            (out,) = self.model([tensor])
        keep = out["scores"] >= min_score
        boxes, scores, classes = (out[k][keep].numpy() for k in ("boxes", "scores", "labels"))
        return clip_detections(boxes, scores, classes, self.labels, image.width, image.height)


def _pretrained(name: str, builder: Callable[..., nn.Module], weights_enum: type) -> Callable[[Settings], Detector]:
    def build(settings: Settings) -> Detector:
        weights = weights_enum.COCO_V1
        model = builder(weights=None, weights_backbone=None, num_classes=len(weights.meta["categories"]))
        state = torch.load(torchvision_weights(weights.url, settings), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return TorchDetector(name, model, weights.meta["categories"])

    return build


_detection = torchvision.models.detection
register_detector(
    DetectorSpec(
        "fasterrcnn",
        _pretrained("fasterrcnn", _detection.fasterrcnn_resnet50_fpn, _detection.FasterRCNN_ResNet50_FPN_Weights),
        "Faster R-CNN ResNet-50 FPN, torchvision COCO weights (file or hub cache; not bundled)",
    )
)
register_detector(
    DetectorSpec(
        "ssd",
        _pretrained("ssd", _detection.ssd300_vgg16, _detection.SSD300_VGG16_Weights),
        "SSD300 VGG16, torchvision COCO weights (file or hub cache; not bundled)",
    )
)
