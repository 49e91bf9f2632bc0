"""The three dataset formats load into the same records; broken or empty datasets say so."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import COCO128, coco_val_image
from viscover.detect import BadDatasetError, load_dataset


def test_coco_json_boxes_become_corner_pixels(coco_val_subset: Path) -> None:
    dataset = load_dataset(coco_val_subset, "val")
    assert len(dataset) == 4 and len(dataset.classes) == 80 and dataset.classes[0] == "person"
    first = dataset.images[0]
    assert first.path.is_file() and first.boxes.shape == (len(first.labels), 4)
    assert (first.boxes[:, 2] > first.boxes[:, 0]).all() and (first.boxes[:, 3] > first.boxes[:, 1]).all()


def test_yolo_txt_with_config_names(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    (root / "images" / "val2017").mkdir(parents=True)
    (root / "labels" / "val2017").mkdir(parents=True)
    shutil.copy(COCO128 / "object_detection" / "config.yaml", root / "data.yaml")
    stems = sorted(p.stem for p in (COCO128 / "object_detection" / "labels" / "val2017").glob("*.txt"))[:3]
    for stem in stems:
        shutil.copy(COCO128 / "images" / "val2017" / f"{stem}.jpg", root / "images" / "val2017")
        shutil.copy(COCO128 / "object_detection" / "labels" / "val2017" / f"{stem}.txt", root / "labels" / "val2017")
    dataset = load_dataset(root, "val")
    assert len(dataset) == 3 and dataset.classes[2] == "car"
    # the same image in COCO json and YOLO txt gives the same boxes (YOLO rounds to 6 digits)
    coco = {i.path.name: i for i in load_dataset(COCO128.parent / "coco-mini", "val").images}
    for item in dataset.images:
        if item.path.name in coco:
            np.testing.assert_allclose(np.sort(item.boxes, 0), np.sort(coco[item.path.name].boxes, 0), atol=0.5)


def test_pascal_voc_xml(tmp_path: Path) -> None:
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    shutil.copy(coco_val_image(139), tmp_path / "JPEGImages" / "a.jpg")
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename>"
        "<object><name>tv</name><bndbox><xmin>5</xmin><ymin>167</ymin><xmax>155</xmax><ymax>262</ymax></bndbox></object>"
        "<object><name>chair</name><bndbox><xmin>292</xmin><ymin>218</ymin><xmax>352</xmax><ymax>316</ymax></bndbox>"
        "</object></annotation>"
    )
    dataset = load_dataset(tmp_path, "val")
    assert dataset.classes == ("chair", "tv") and dataset.images[0].labels == ("tv", "chair")
    np.testing.assert_array_equal(dataset.images[0].boxes[0], [5, 167, 155, 262])
    (tmp_path / "Annotations" / "b.xml").write_text("<annotation><object><name>x</name></object>")
    with pytest.raises(BadDatasetError, match=r"b\.xml is not a Pascal-VOC annotation"):
        load_dataset(tmp_path, "val")


def test_missing_empty_and_unrecognised_datasets(tmp_path: Path) -> None:
    with pytest.raises(BadDatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope", "val")
    with pytest.raises(BadDatasetError, match="no COCO annotations"):
        load_dataset(tmp_path, "val")
    (tmp_path / "instances_val.json").write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(BadDatasetError, match="has no images"):
        load_dataset(tmp_path, "val")
    (tmp_path / "instances_val.json").write_text('{"images": [{"id": 1}]}')
    with pytest.raises(BadDatasetError, match="not a COCO instances file"):
        load_dataset(tmp_path, "val")
