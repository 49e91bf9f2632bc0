"""Real detectors on real COCO val images, and the model-file errors a user can hit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED
from viscover.config import Settings
from viscover.detect import box_iou, create_detector, list_detectors, load_dataset, windows
from viscover.errors import UnknownNameError, WeightsUnavailableError


@pytest.mark.parametrize("name", ["ssd_mobilenet_v1_coco", "yolox_nano", "nanodet_m"])
def test_pretrained_detectors_find_the_annotated_objects(name: str, coco_val_subset: Path, tmp_path: Path) -> None:
    detector = create_detector(name, Settings(home=tmp_path))
    dataset = load_dataset(coco_val_subset, "val")
    found_images = 0
    for item in dataset.images:
        with Image.open(item.path) as im:
            detections = detector.detect(im.convert("RGB"), min_score=0.4)
        assert all(d.score >= 0.4 for d in detections)
        assert detections == sorted(detections, key=lambda d: -d.score)
        # some detection has the label of an annotated box and overlaps it with IoU >= 0.5
        hits = [
            d
            for d in detections
            if (box_iou(np.array([tuple(d.box)]), item.boxes[np.array(item.labels) == d.label]) >= 0.5).any()
        ]
        found_images += bool(hits)
    assert found_images >= 3, f"{name} matched annotated objects in only {found_images} of 4 images"


def test_registry_lists_the_paper_families_and_refuses_unknown_names(tmp_path: Path) -> None:
    names = set(list_detectors())
    assert {"ssd_mobilenet_v1_coco", "yolox_nano", "nanodet_m", "fasterrcnn", "ssd"} <= names
    with pytest.raises(UnknownNameError, match="unknown detector 'yolo9000'"):
        create_detector("yolo9000", Settings(home=tmp_path))


def test_missing_model_file_says_where_to_put_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, models_dir=tmp_path / "empty", allow_download=False)
    with pytest.raises(WeightsUnavailableError, match=r"yolox-nano/yolox_nano\.onnx.*SHA-256 695e750a"):
        create_detector("yolox_nano", settings)


def test_a_corrupt_model_file_fails_its_checksum(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(SHARED / "models" / "yolox-nano", models / "yolox-nano")
    model = models / "yolox-nano" / "yolox_nano.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(WeightsUnavailableError, match=r"expected 695e750a.*replace it"):
        create_detector("yolox_nano", Settings(home=tmp_path, models_dir=models))


def test_torchvision_fasterrcnn_loads_coco_weights_from_the_models_dir(tmp_path: Path) -> None:
    import torch
    import torchvision

    weights = torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1
    reference = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    torch.save(reference.state_dict(), tmp_path / weights.url.rsplit("/", 1)[-1])
    detector = create_detector("fasterrcnn", Settings(home=tmp_path, models_dir=tmp_path, allow_download=False))
    assert torch.equal(detector.model.rpn.head.conv[0][0].weight, reference.rpn.head.conv[0][0].weight)
    assert detector.labels[1] == "person" and len(detector.labels) == 91
    assert isinstance(detector.detect(Image.new("RGB", (64, 48)), 0.5), list)


def test_sliding_windows_cover_the_image_at_three_scales() -> None:
    found = windows(800, 600)
    assert len(found) == 9 + 25 + 49 and {(d.label, d.score) for d in found} == {("region", 0.0)}
    assert all(0 <= d.box.x0 < d.box.x1 <= 800 and 0 <= d.box.y0 < d.box.y1 <= 600 for d in found)
    assert {(round(d.box.width), round(d.box.height)) for d in found} == {(400, 300), (267, 200), (200, 150)}
    assert max(d.box.x1 for d in found) == 800 and max(d.box.y1 for d in found) == 600
