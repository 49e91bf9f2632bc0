"""The paper's two detector families as torchvision builds them: Faster R-CNN (ResNet-50 FPN) and SSD300
(VGG16), with COCO weights from the models directory, the torch hub cache, or a download when allowed.

`TorchDetector` also runs the detectors that `viscover detect train` makes. PyTorch is imported when one
is built, not when the registry lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

from viscover.config import Settings
from viscover.detect.detections import Detection, clip_detections
from viscover.detect.registry import DETECTORS, Detector, DetectorSpec
from viscover.model_files import torchvision_weights
from viscover.threads import torch_threads

if TYPE_CHECKING:
    from torch import nn


class TorchDetector(Detector):
    """A torchvision detection model in eval mode; `labels[i]` names the model's class index i."""

    def __init__(self, name: str, model: nn.Module, labels: Sequence[str], threads: int) -> None:
        self.name, self.model, self.labels = name, model.eval(), tuple(labels)
        torch_threads(threads)

    def detect(self, image: Image.Image, min_score: float = 0.3) -> list[Detection]:
        import torch
        from torchvision.transforms.functional import pil_to_tensor

        tensor = pil_to_tensor(image).float() / 255.0
        with torch.inference_mode():
            (out,) = self.model([tensor])
        keep = out["scores"] >= min_score
        boxes, scores, classes = (out[k][keep].numpy() for k in ("boxes", "scores", "labels"))
        return clip_detections(boxes, scores, classes, self.labels, image.width, image.height)


def _pretrained(name: str, builder: str, weights_enum: str):
    def build(settings: Settings, threads: int) -> Detector:
        import torch
        import torchvision

        detection = torchvision.models.detection
        weights = getattr(detection, weights_enum).COCO_V1
        model = getattr(detection, builder)(
            weights=None, weights_backbone=None, num_classes=len(weights.meta["categories"])
        )
        state = torch.load(torchvision_weights(weights.url, settings), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return TorchDetector(name, model, weights.meta["categories"], threads)

    return build


DETECTORS.register(
    DetectorSpec(
        "fasterrcnn",
        _pretrained("fasterrcnn", "fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights"),
        "Faster R-CNN ResNet-50 FPN, torchvision COCO weights (file or hub cache; not bundled)",
    )
)
DETECTORS.register(
    DetectorSpec(
        "ssd",
        _pretrained("ssd", "ssd300_vgg16", "SSD300_VGG16_Weights"),
        "SSD300 VGG16, torchvision COCO weights (file or hub cache; not bundled)",
    )
)
