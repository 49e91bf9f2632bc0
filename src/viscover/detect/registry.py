"""Detectors by name, like the backbones: each file under `detectors/` registers its specs.

A detector takes an RGB image and returns `Detection`s in that image's pixels, after its own NMS.
Trained detectors (`viscover detect train`) are found by name under HOME/detectors/NAME.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from viscover.config import Settings
from viscover.detect.boxes import Detection
from viscover.errors import UnknownNameError

# Some exports use Pascal-VOC spellings for COCO classes; viscover reports the COCO names.
COCO_ALIASES = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
}


class Detector(ABC):
    """A loaded detector; `labels` are the class names it can return."""

    name: str
    labels: tuple[str, ...]

    @abstractmethod
    def detect(self, image: Image.Image, min_score: float = 0.3) -> list[Detection]:
        """Objects in an RGB image, best first, scores at least `min_score`."""


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    build: Callable[[Settings], Detector]
    description: str = ""


_REGISTRY: dict[str, DetectorSpec] = {}


def register_detector(spec: DetectorSpec) -> DetectorSpec:
    _REGISTRY[spec.name] = spec
    return spec


def list_detectors() -> dict[str, DetectorSpec]:
    from viscover.detect import detectors

    for module in pkgutil.iter_modules(detectors.__path__):
        importlib.import_module(f"{detectors.__name__}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def create_detector(name: str, settings: Settings | None = None) -> Detector:
    """A built-in detector, or one trained into `settings.home` by `viscover detect train`."""
    settings = settings or Settings()
    detectors = list_detectors()
    if name in detectors:
        return detectors[name].build(settings)
    from viscover.detect.train import load_trained_detector

    trained = load_trained_detector(name, settings)
    if trained is None:
        raise UnknownNameError(f"unknown detector {name!r}; registered: {', '.join(detectors)}")
    return trained


def read_labels(lines: list[str]) -> tuple[str, ...]:
    """Class names from a label file, spelled as COCO spells them."""
    return tuple(COCO_ALIASES.get(line.strip(), line.strip()) for line in lines)
