from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import CLASSES, caltech_image
from viscover import Engine
from viscover.errors import BadCropError, BadImageError, NotIndexedError, UnknownPinError
from viscover.ingest import CropBox

HELD_OUT = 20  # image numbers above PER_CLASS are never in the catalog


def categories(hits) -> list[str]:
    return [hit.pin.category for hit in hits]


@pytest.mark.parametrize("metric", ["hamming", "l2", "l1"])
def test_an_image_of_a_pin_finds_that_pin_first(engine: Engine, metric: str) -> None:
    """First, or folded into the first as a near-duplicate (a tiny catalog learns 24-bit codes: ties)."""
    for pin in list(engine.catalog)[::3]:
        top = engine.search(pin.location, k=5, metric=metric)[0]
        assert pin.pin_id in {top.pin.pin_id, *top.near_duplicates}
        assert top.distance == pytest.approx(0, abs=1e-3)


def test_held_out_images_find_their_category(engine: Engine) -> None:
    for category in CLASSES:
        hits = engine.search(str(caltech_image(category, HELD_OUT)), k=5)
        assert categories(hits)[0] == category
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_a_crop_searches_only_its_region(engine: Engine) -> None:
    """Two objects side by side: each half's crop ranks its own category above chance (1 in 5)."""
    left = Image.open(caltech_image("airplanes", HELD_OUT)).convert("RGB").resize((300, 220))
    right = Image.open(caltech_image("Leopards", HELD_OUT)).convert("RGB").resize((300, 220))
    scene = Image.new("RGB", (600, 220))
    scene.paste(left, (0, 0))
    scene.paste(right, (300, 0))
    for box, category in [(CropBox(0, 0, 300, 220), "airplanes"), (CropBox(300, 0, 300, 220), "Leopards")]:
        found = categories(engine.search(scene, crop=box, k=5))
        assert found[0] == category and found.count(category) >= 3, found


def test_search_by_pin_id_and_by_bytes(engine: Engine) -> None:
    pin = next(iter(engine.catalog))
    by_id = engine.search(pin.pin_id, k=3)
    by_bytes = engine.search(Path(pin.location).read_bytes(), k=3)
    assert [h.pin.pin_id for h in by_id] == [h.pin.pin_id for h in by_bytes]
    cropped = engine.search(pin.pin_id, crop=CropBox(0, 0, pin.width // 2, pin.height // 2), k=3)
    assert len(cropped) == 3


def test_index_survives_reopen_without_reextracting(engine: Engine) -> None:
    query = str(caltech_image("pagoda", HELD_OUT))
    before = [(h.pin.pin_id, h.distance) for h in engine.search(query, k=5)]
    engine.close()
    with Engine.open(engine.settings.home) as reopened:
        report = reopened.index(progress=False)
        assert (report.extracted, report.rebuilt) == (0, False)
        assert [(h.pin.pin_id, h.distance) for h in reopened.search(query, k=5)] == before


def test_new_pins_are_added_incrementally(engine: Engine, tmp_path: Path) -> None:
    extra = tmp_path / "extra" / "pagoda"
    extra.mkdir(parents=True)
    (extra / "new.jpg").write_bytes(caltech_image("pagoda", HELD_OUT).read_bytes())
    engine.search(str(extra / "new.jpg"), k=1, metric="l2")  # builds the in-memory raw index
    engine.ingest(extra.parent, progress=False)
    report = engine.index(progress=False)
    assert (report.extracted, report.indexed) == (1, 31)
    for metric in ("hamming", "l2"):
        hit = engine.search(str(extra / "new.jpg"), k=1, metric=metric)[0]
        assert hit.pin.location.endswith("new.jpg"), metric


def test_deleted_pins_leave_the_results(engine: Engine) -> None:
    pin = next(p for p in engine.catalog if p.category == "Leopards")
    assert engine.search(pin.pin_id, k=1)[0].pin.pin_id == pin.pin_id
    assert engine.delete([pin.pin_id]) == 1
    assert pin.pin_id not in [h.pin.pin_id for h in engine.search(pin.location, k=30)]
    with Engine.open(engine.settings.home) as reopened:
        assert len(reopened.visual_index.codes) == 29


def test_near_duplicates_collapse_into_one_result(engine: Engine, tmp_path: Path) -> None:
    original = Image.open(caltech_image("accordion", HELD_OUT)).convert("RGB")
    folder = tmp_path / "dups" / "accordion"
    folder.mkdir(parents=True)
    original.save(folder / "a.png")
    original.save(folder / "b.jpg", quality=90)  # other bytes, same picture
    engine.ingest(folder.parent, progress=False)
    engine.index(progress=False)
    hits = engine.search(str(folder / "a.png"), k=5)
    top = {hits[0].pin.location, *[engine.pin(p).location for p in hits[0].near_duplicates]}
    assert {str(folder / "a.png"), str(folder / "b.jpg")} <= top
    assert all(not h.pin.location.startswith(str(folder)) for h in hits[1:])


def test_bad_queries_are_clear(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(UnknownPinError, match="neither an image file nor a pin id"):
        engine.search("no-such-pin")
    with pytest.raises(BadCropError, match="outside"):
        engine.search(str(caltech_image("pagoda", 1)), crop=CropBox(0, 0, 10_000, 10))
    with pytest.raises(BadImageError, match="not an image"):
        engine.search(b"definitely not a jpeg")
    with pytest.raises(ValueError, match="unknown metric"):
        engine.search(str(caltech_image("pagoda", 1)), metric="cosine")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    with Engine.open(tmp_path / "empty") as empty, pytest.raises(NotIndexedError, match="viscover index"):
        empty.search(buffer.getvalue())


def test_interrupted_index_resumes_without_redoing_work(caltech_subset: Path, tmp_path: Path, monkeypatch) -> None:
    with Engine.open(tmp_path / "home", batch_size=8) as engine:
        engine.ingest(caltech_subset, progress=False)
        real_put, batches = engine.catalog.put_features, []

        def put_then_crash(*args):
            if len(batches) == 2:
                raise KeyboardInterrupt
            batches.append(args)
            real_put(*args)

        monkeypatch.setattr(engine.catalog, "put_features", put_then_crash)
        with pytest.raises(KeyboardInterrupt):
            engine.index(progress=False)
        monkeypatch.undo()
        assert engine.visual_index is None
        report = engine.index(progress=False)
        assert (report.extracted, report.indexed) == (30 - 16, 30)
