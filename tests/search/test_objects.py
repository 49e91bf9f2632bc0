"""The object index: detections stored per pin, dominant objects marked, and object search returning the
scene that contains a pasted object."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import COCO_MINI, coco_val_image
from viscover import Engine
from viscover.errors import NotIndexedError
from viscover.ingest import CropBox
from viscover.search import index_objects, object_run, search_objects

ZEBRA = (76, 151, 268, 257)  # a zebra in COCO val 113354, as x0, y0, x1, y1
BACKGROUNDS = ("113354", "19221")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight COCO val scenes, one of which has the zebra from another image pasted into its lower right."""
    root = tmp_path_factory.mktemp("scenes")
    others = [p for p in sorted((COCO_MINI / "val2017").glob("*.jpg")) if p.stem.lstrip("0") not in BACKGROUNDS]
    for path in others[:7]:
        shutil.copy(path, root)
    background = Image.open(coco_val_image(19221)).convert("RGB")  # a street: the zebra lands on the road
    zebra = Image.open(coco_val_image(113354)).convert("RGB").crop(ZEBRA)
    background.paste(zebra, (background.width - zebra.width - 20, background.height - zebra.height - 30))
    background.save(root / "pasted.jpg", quality=95)
    return root


def test_object_search_finds_the_scene_with_the_pasted_object(scenes: Path, tmp_path: Path) -> None:
    # 1280-bit median codes: a catalog of a few dozen objects is too small to learn 256 ITQ bits from
    with Engine.open(tmp_path / "home", detector="yolox_nano", binarizer="median", code_bits=None) as engine:
        engine.ingest(scenes, progress=False)
        with pytest.raises(NotIndexedError, match="viscover objects"):
            search_objects(engine, str(coco_val_image(113354)))
        report = index_objects(engine, progress=False)
        assert report.pins == 8 and report.objects >= 8 and report.indexed == report.objects
        x0, y0, x1, y1 = ZEBRA
        hits = search_objects(engine, str(coco_val_image(113354)), crop=CropBox(x0, y0, x1 - x0, y1 - y0), k=3)
        assert hits[0].pin.location.endswith("pasted.jpg") and hits[0].object.label == "zebra"
        assert len({hit.pin.key for hit in hits}) == len(hits)  # one row per scene
        stored = engine.catalog.objects(object_run(engine), key=hits[0].pin.key)
        assert any(o.label == "zebra" for o in stored)
        assert sum(o.dominant for o in stored) <= 1


def test_objects_resume_and_a_failed_pin_loses_nothing(scenes: Path, tmp_path: Path) -> None:
    copy = tmp_path / "scenes"
    shutil.copytree(scenes, copy)
    with Engine.open(tmp_path / "home", detector="yolox_nano") as engine:
        engine.ingest(copy, progress=False)
        moved = tmp_path / "away.jpg"
        (copy / "pasted.jpg").rename(moved)  # one image goes missing mid-run
        first = index_objects(engine, progress=False)
        assert first.pins == 7 and len(first.failures) == 1 and "pasted.jpg" in first.failures[0][0]
        run = object_run(engine)
        kept = engine.catalog.objects(run)
        moved.rename(copy / "pasted.jpg")
        second = index_objects(engine, progress=False)
        assert second.pins == 1 and not second.failures  # only the missing pin is detected again
        assert engine.catalog.objects(run)[: len(kept)] == kept
        assert index_objects(engine, progress=False).pins == 0
