"""`detect train` on a handful of real COCO images produces a detector that loads by name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from viscover.config import Settings
from viscover.detect import create_detector, load_dataset
from viscover.detect.train import DetectTrainConfig, train_detector
from viscover.errors import ViscoverError, WeightsUnavailableError


@pytest.mark.parametrize(("arch", "ohem"), [("fasterrcnn", False), ("ssd", True)])
def test_one_iteration_makes_a_loadable_detector(arch: str, ohem: bool, coco_val_subset: Path, tmp_path: Path) -> None:
    dataset = load_dataset(coco_val_subset, "val")
    settings = Settings(home=tmp_path)
    config = DetectTrainConfig(
        name=f"tiny_{arch}", arch=arch, epochs=1, max_steps=1, ohem=ohem, match_iou=0.7, proposals=100, image_size=256
    )
    history = train_detector(dataset, config, settings, progress=False)
    assert len(history) == 1 and all(v > 0 for k, v in history[0].items() if k != "epoch")
    detector = create_detector(f"tiny_{arch}", settings)
    assert detector.labels[1:] == dataset.classes
    with Image.open(dataset.images[0].path) as im:
        detections = detector.detect(im.convert("RGB"), min_score=0.0)
    assert all(d.label in dataset.classes for d in detections)
    # a finished run resumes as a no-op; other options under the same name are refused
    assert train_detector(dataset, config, settings, progress=False) == history
    with pytest.raises(ViscoverError, match="different options"):
        train_detector(dataset, replace(config, lr=0.5), settings, progress=False)


def test_bad_options_and_broken_checkpoints_are_clear(coco_val_subset: Path, tmp_path: Path) -> None:
    dataset = load_dataset(coco_val_subset, "val")
    settings = Settings(home=tmp_path)
    with pytest.raises(ViscoverError, match="unknown detector architecture 'yolo'"):
        train_detector(dataset, DetectTrainConfig(name="x", arch="yolo"), settings, progress=False)
    with pytest.raises(ViscoverError, match="--match-iou"):
        train_detector(dataset, DetectTrainConfig(name="x", match_iou=1.5), settings, progress=False)
    broken = tmp_path / "detectors" / "broken"
    broken.mkdir(parents=True)
    (broken / "meta.json").write_text('{"config": {"name": "broken"}, "classes": ["a"]}')
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="does not hold a loadable trained detector"):
        create_detector("broken", settings)
