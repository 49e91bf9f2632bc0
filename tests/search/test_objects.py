"""The object index: detections stored per pin, dominant objects marked, and object search returning the
scene that contains a pasted object."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import COCO_MINI, coco_val_image
from viscover import Box, BytesQuery, Engine, PinQuery
from viscover.errors import NotIndexedError
from viscover.ingest import ObjectRun
from viscover.search import index_objects, object_run


def zebra_query(crop: Box | None = None) -> BytesQuery:
    return BytesQuery(coco_val_image(113354).read_bytes(), crop)


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
    with Engine.open(
        tmp_path / "home", detector="yolox_nano", object_windows=False, binarizer="median", code_bits=None
    ) as engine:
        engine.ingest(scenes, progress=False)
        with pytest.raises(NotIndexedError, match="viscover objects"):
            engine.search_objects(zebra_query())
        report = index_objects(engine, progress=False)
        assert report.pins == 8 and report.objects >= 8 and report.indexed == report.objects
        hits = engine.search_objects(zebra_query(Box(*ZEBRA)), k=3)
        assert hits[0].pin.location.endswith("pasted.jpg") and hits[0].object.label == "zebra"
        assert len({hit.pin.key for hit in hits}) == len(hits)  # one row per scene
        assert all(h.source == "object" and h.code_bits == 1280 and 0 <= h.similarity <= 1 for h in hits)
        stored = engine.catalog.objects(object_run(engine.settings, engine.feature_key), key=hits[0].pin.key)
        assert any(o.label == "zebra" for o in stored)
        assert sum(o.dominant for o in stored) <= 1


def test_objects_resume_and_a_failed_pin_loses_nothing(scenes: Path, tmp_path: Path) -> None:
    copy = tmp_path / "scenes"
    shutil.copytree(scenes, copy)
    with Engine.open(tmp_path / "home", detector="yolox_nano", object_windows=False) as engine:
        engine.ingest(copy, progress=False)
        moved = tmp_path / "away.jpg"
        (copy / "pasted.jpg").rename(moved)  # one image goes missing mid-run
        first = index_objects(engine, progress=False)
        assert first.pins == 7 and len(first.failures) == 1 and "pasted.jpg" in first.failures[0][0]
        run = object_run(engine.settings, engine.feature_key)
        kept = engine.catalog.objects(run)
        moved.rename(copy / "pasted.jpg")
        second = index_objects(engine, progress=False)
        assert second.pins == 1 and not second.failures  # only the missing pin is detected again
        assert engine.catalog.objects(run)[: len(kept)] == kept
        assert index_objects(engine, progress=False).pins == 0


def test_a_new_dominance_rule_marks_stored_objects_again_without_detecting(scenes: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Engine.open(home, detector="yolox_nano", object_windows=False) as engine:
        engine.ingest(scenes, progress=False)
        first = index_objects(engine, progress=False)
        run = object_run(engine.settings, engine.feature_key)
        ids = {o.id for o in engine.catalog.objects(run)}
    with Engine.open(
        home, detector="yolox_nano", object_windows=False, dominant_area=0.0
    ) as loose:  # every largest box is dominant
        again = index_objects(loose, progress=False)
        stored = loose.catalog.objects(run)
    assert (again.pins, again.remarked) == (0, True) and {o.id for o in stored} == ids  # nothing detected again
    assert again.dominant == len({o.key for o in stored}) > first.dominant


def test_deleting_a_pin_removes_its_objects_from_the_published_object_index(scenes: Path, tmp_path: Path) -> None:
    with Engine.open(
        tmp_path / "home", detector="yolox_nano", object_windows=False, binarizer="median", code_bits=None
    ) as engine:
        engine.ingest(scenes, progress=False)
        index_objects(engine, progress=False)
        pasted = next(p for p in engine.catalog if p.location.endswith("pasted.jpg"))
        count = len(engine.searcher.snapshot().objects.codes)
        held = len(engine.catalog.objects(object_run(engine.settings, engine.feature_key), key=pasted.key))
        engine.delete([pasted.pin_id])
        assert len(engine.searcher.snapshot().objects.codes) == count - held
        assert all(h.pin_id != pasted.pin_id for h in engine.search_objects(zebra_query(Box(*ZEBRA)), k=8))


def test_a_query_for_a_stored_object_s_box_is_at_distance_zero(scenes: Path, tmp_path: Path) -> None:
    """Objects are embedded from their padded box decoded as a query for that box is, so the same bytes and
    box find the object itself at distance 0."""
    with Engine.open(
        tmp_path / "home", detector="yolox_nano", object_windows=False, binarizer="median", code_bits=None
    ) as engine:
        engine.ingest(scenes, progress=False)
        index_objects(engine, progress=False)
        run = object_run(engine.settings, engine.feature_key)
        pin = next(p for p in engine.catalog if p.location.endswith("pasted.jpg"))
        stored = engine.catalog.objects(run, key=pin.key)[0]
        box = stored.box.padded(engine.settings.object_context, pin.width, pin.height)
        top = engine.search_objects(BytesQuery(Path(pin.location).read_bytes(), box), k=1)[0]
        assert (top.pin_id, top.object.id, top.distance) == (pin.pin_id, stored.id, 0)


def test_windows_are_indexed_beside_the_detections_but_never_dominate_nor_become_dots(
    scenes: Path, tmp_path: Path
) -> None:
    from viscover.search import Insight

    with Engine.open(tmp_path / "home", detector="yolox_nano", binarizer="median", code_bits=None) as engine:
        engine.ingest(scenes, progress=False)
        engine.index(progress=False)
        report = index_objects(engine, progress=False)  # windows are on by default
        run = object_run(engine.settings, engine.feature_key)
        assert run.endswith("|windows")
        stored = engine.catalog.objects(run)
        regions = [o for o in stored if o.label == "region"]
        assert len(regions) == 8 * 83 and report.indexed == len(stored) == report.objects
        assert not any(o.dominant for o in regions) and all(o.score == 0 for o in regions)
        with Engine.open(tmp_path / "plain", detector="yolox_nano", object_windows=False, binarizer="median") as plain:
            plain.ingest(scenes, progress=False)
            index_objects(plain, progress=False)
            detected = plain.catalog.objects(object_run(plain.settings, plain.feature_key))
        assert sorted((tuple(o.box), o.dominant) for o in stored if o.label != "region") == sorted(
            (tuple(o.box), o.dominant) for o in detected
        )  # the detector's boxes and the dominant ones are the same with or without windows
        pin = next(p for p in engine.catalog if p.location.endswith("pasted.jpg"))
        dots = Insight(engine.searcher).dots(PinQuery(pin.pin_id))
        assert dots and all(d.label != "region" for d in dots)
        # a window's crop is decoded as a query for that box is (one decode per draft size): found at 0
        window = next(o for o in regions if o.key == pin.key and o.box.width < pin.width / 3)
        box = window.box.padded(engine.settings.object_context, pin.width, pin.height)
        top = engine.search_objects(BytesQuery(Path(pin.location).read_bytes(), box), k=1)[0]
        assert (top.pin_id, top.object.id, top.distance) == (pin.pin_id, window.id, 0)


def test_object_runs_read_names_from_before_windows_and_refuse_unknown_ones() -> None:
    old = "yolox_nano@0.5|efficientnet_lite0/pool@5f6995200f2f5ab7|context=0.15"
    assert ObjectRun.parse(old) == ObjectRun("yolox_nano", 0.5, "efficientnet_lite0/pool@5f6995200f2f5ab7", 0.15)
    assert str(ObjectRun.parse(old)) == old and str(ObjectRun.parse(old + "|windows")) == old + "|windows"
    with pytest.raises(ValueError, match="not an object run"):
        ObjectRun.parse(old + "|tiles")
