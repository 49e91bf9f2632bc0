"""Detectors by name, like the backbones: each file under `detectors/` registers its specs.

A detector takes an RGB image and returns `Detection`s in that image's pixels, after its own NMS.
Trained detectors (`viscover detect train`) are found by name under HOME/detectors/NAME.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from viscover.config import Settings
from viscover.detect.detections import Detection
from viscover.errors import UnknownNameError
from viscover.registry import Registry

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
    """A loaded detector; `labels` are the class names it can return. `detect` is safe to call from
    several threads at once."""

    name: str
    labels: tuple[str, ...]

    @abstractmethod
    def detect(self, image: Image.Image, min_score: float = 0.3) -> list[Detection]:
        """Objects in an RGB image, best first, scores at least `min_score`."""


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    build: Callable[[Settings, int], Detector]  # (settings, threads) → a loaded detector
    description: str = ""


DETECTORS: Registry[DetectorSpec] = Registry("detector", "viscover.detect.detectors")


def list_detectors() -> dict[str, DetectorSpec]:
    return DETECTORS.all()


def create_detector(name: str, settings: Settings | None = None, threads: int | None = None) -> Detector:
    """A built-in detector, or one trained into `settings.home` by `viscover detect train`, running on
    `threads` threads (default: the batch thread count)."""
    settings = settings or Settings()
    threads = threads or settings.threads
    if name in DETECTORS:
        return DETECTORS.get(name).build(settings, threads)
    from viscover.detect.trained import load_trained_detector

    trained = load_trained_detector(name, settings, threads)
    if trained is None:
        raise UnknownNameError(
            f"unknown detector {name!r}; registered: {', '.join(DETECTORS.all())}, or one trained into the home"
        )
    return trained


def read_labels(lines: list[str]) -> tuple[str, ...]:
    """Class names from a label file, spelled as COCO spells them."""
    return tuple(COCO_ALIASES.get(line.strip(), line.strip()) for line in lines)
