"""The one registry behind backbones and detectors: names to specs, plugins found by importing their package,
duplicates refused, unknown names listed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from viscover.detect import DETECTORS
from viscover.errors import UnknownNameError
from viscover.features import BACKBONES
from viscover.registry import Registry


@dataclass(frozen=True)
class Spec:
    name: str
    build: object = None


def test_specs_by_name_and_duplicates_refused() -> None:
    registry: Registry[Spec] = Registry("source")
    spec = registry.register(Spec("visual"))
    assert registry.get("visual") is spec and "visual" in registry and "text" not in registry
    with pytest.raises(ValueError, match="source 'visual' is registered twice"):
        registry.register(Spec("visual"))
    with pytest.raises(UnknownNameError, match="unknown source 'text'; registered: visual"):
        registry.get("text")


def test_backbones_and_detectors_share_it() -> None:
    assert {"efficientnet_lite0", "resnet50", "vgg16"} <= set(BACKBONES.all())
    assert {"yolox_nano", "ssd_mobilenet_v1_coco", "nanodet_m", "fasterrcnn"} <= set(DETECTORS.all())
    assert list(DETECTORS.all()) == sorted(DETECTORS.all())
