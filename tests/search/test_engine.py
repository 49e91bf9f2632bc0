from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import CLASSES, caltech_image
from viscover import Box, BytesQuery, Engine, ImageQuery, PinQuery
from viscover.errors import (
    BadArgumentError,
    BadCropError,
    BadImageError,
    NotIndexedError,
    UnknownNameError,
    UnknownPinError,
)

HELD_OUT = 20  # image numbers above PER_CLASS are never in the catalog


def categories(hits) -> list[str]:
    return [hit.pin.category for hit in hits]


def file_query(path: Path | str, crop: Box | None = None) -> BytesQuery:
    return BytesQuery(Path(path).read_bytes(), crop, name=str(path))


@pytest.mark.parametrize("metric", ["hamming", "l2", "l1"])
def test_an_image_of_a_pin_finds_that_pin_first(engine: Engine, metric: str) -> None:
    """First, or folded into the first as a near-duplicate (a tiny catalog learns 24-bit codes: ties)."""
    for pin in list(engine.catalog)[::3]:
        top = engine.search(file_query(pin.location), k=5, metric=metric)[0]
        assert pin.pin_id in {top.pin.pin_id, *top.near_duplicates}
        assert top.distance == pytest.approx(0, abs=1e-3) and top.similarity == pytest.approx(1, abs=1e-3)


def test_held_out_images_find_their_category(engine: Engine) -> None:
    for category in CLASSES:
        hits = engine.search(file_query(caltech_image(category, HELD_OUT)), k=5)
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
    for box, category in [(Box(0, 0, 300, 220), "airplanes"), (Box(300, 0, 600, 220), "Leopards")]:
        found = categories(engine.search(ImageQuery(scene, box), k=5))
        assert found[0] == category and found.count(category) >= 3, found


def test_search_by_pin_id_and_by_bytes(engine: Engine) -> None:
    pin = next(iter(engine.catalog))
    by_id = engine.search(PinQuery(pin.pin_id), k=3)
    by_bytes = engine.search(file_query(pin.location), k=3)
    assert [h.pin.pin_id for h in by_id] == [h.pin.pin_id for h in by_bytes]
    half = Box(0, 0, pin.width // 2, pin.height // 2)
    cropped = engine.search(PinQuery(pin.pin_id, half), k=3)
    assert [h.pin_id for h in cropped] == [h.pin_id for h in engine.search(file_query(pin.location, half), k=3)]


def test_the_snapshot_is_reloaded_only_when_a_generation_is_published(engine: Engine) -> None:
    first = engine.searcher.snapshot()
    assert engine.searcher.snapshot() is first  # one stat per call, no reload while nothing changes
    engine.delete([next(iter(engine.catalog)).pin_id])
    second = engine.searcher.snapshot()
    assert second is not first and second.generation.number == first.generation.number + 1
    assert len(second.visual.codes) == len(first.visual.codes) - 1  # the old snapshot is left as it was


def test_index_survives_reopen_without_reextracting(engine: Engine) -> None:
    query = file_query(caltech_image("pagoda", HELD_OUT))
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
    engine.search(file_query(extra / "new.jpg"), k=1, metric="l2")  # builds the in-memory raw index
    engine.ingest(extra.parent, progress=False)
    report = engine.index(progress=False)
    assert (report.extracted, report.indexed) == (1, 31)
    for metric in ("hamming", "l2"):
        hit = engine.search(file_query(extra / "new.jpg"), k=1, metric=metric)[0]
        assert hit.pin.location.endswith("new.jpg"), metric


def test_deleted_pins_leave_the_results(engine: Engine) -> None:
    pin = next(p for p in engine.catalog if p.category == "Leopards")
    assert engine.search(PinQuery(pin.pin_id), k=1)[0].pin.pin_id == pin.pin_id
    assert engine.delete([pin.pin_id]) == 1
    assert pin.pin_id not in [h.pin.pin_id for h in engine.search(file_query(pin.location), k=30)]
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
    hits = engine.search(file_query(folder / "a.png"), k=5)
    top = {hits[0].pin.location, *[engine.catalog.get(p).location for p in hits[0].near_duplicates]}
    assert {str(folder / "a.png"), str(folder / "b.jpg")} <= top
    assert all(not h.pin.location.startswith(str(folder)) for h in hits[1:])


def test_bad_queries_are_clear(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(UnknownPinError, match="no pin with id 'no-such-pin'"):
        engine.search(PinQuery("no-such-pin"))
    with pytest.raises(BadCropError, match="outside"):
        engine.search(file_query(caltech_image("pagoda", 1), Box(0, 0, 10_000, 10)))
    with pytest.raises(BadCropError, match="no area"):
        engine.search(PinQuery(next(iter(engine.catalog)).pin_id, Box(5, 5, 5, 9)))
    with pytest.raises(BadImageError, match=r"upload\.jpg: not an image"):
        engine.search(BytesQuery(b"definitely not a jpeg", name="upload.jpg"))
    with pytest.raises(UnknownNameError, match="unknown metric"):
        engine.search(file_query(caltech_image("pagoda", 1)), metric="cosine")
    with pytest.raises(BadArgumentError, match="k must be a whole number between 1"):
        engine.search(file_query(caltech_image("pagoda", 1)), k=0)
    with pytest.raises(BadArgumentError, match="cannot search by a str"):
        engine.search(str(caltech_image("pagoda", 1)))  # a string is never taken for a path
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    with Engine.open(tmp_path / "empty") as empty, pytest.raises(NotIndexedError, match="viscover index"):
        empty.search(BytesQuery(buffer.getvalue()))


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
        assert engine.visual_index is None and not (tmp_path / "home" / "index" / "generation.json").exists()
        report = engine.index(progress=False)
        assert (report.extracted, report.indexed) == (30 - 16, 30)


def test_search_many_answers_each_query_as_search_does(engine: Engine) -> None:
    pins = list(engine.catalog)
    queries = [PinQuery(pins[0].pin_id), file_query(caltech_image("Leopards", HELD_OUT)), PinQuery(pins[9].pin_id)]
    batched = engine.search_many(queries, k=4)
    assert [[h.pin_id for h in hits] for hits in batched] == [
        [h.pin_id for h in engine.search(query, k=4)] for query in queries
    ]


def test_every_hit_says_where_it_came_from_and_how_similar_it_is(engine: Engine) -> None:
    query = file_query(caltech_image("airplanes", HELD_OUT))
    for metric in ("hamming", "l2", "l1"):
        hits = engine.search(query, k=5, metric=metric)
        bits = engine.visual_index.bits if metric == "hamming" else None
        for hit in hits:
            assert (hit.source, hit.metric, hit.code_bits, hit.calibrated) == ("visual", metric, bits, True)
            expected = {
                "hamming": 1 - hit.distance / (bits or 1),
                "l2": 1 - hit.distance**2 / 4,
                "l1": 1 - hit.distance / 2,
            }
            assert 0 <= hit.similarity <= 1 and hit.similarity == pytest.approx(expected[metric], abs=1e-6)
        assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)


def test_a_copy_of_a_large_indexed_photo_is_at_distance_zero(engine: Engine, tmp_path: Path) -> None:
    """Indexing decodes large JPEGs at reduced size; a query of the same bytes must see the same pixels."""
    large = Image.open(caltech_image("pagoda", HELD_OUT)).convert("RGB").resize((1600, 1200))
    folder = tmp_path / "large" / "pagoda"
    folder.mkdir(parents=True)
    large.save(folder / "big.jpg", quality=92)
    engine.ingest(folder.parent, progress=False)
    engine.index(progress=False)
    for metric in ("hamming", "l2"):
        top = engine.search(file_query(folder / "big.jpg"), k=1, metric=metric)[0]
        assert top.pin.location == str(folder / "big.jpg") and top.distance == pytest.approx(0, abs=1e-4)


def test_delete_acts_on_the_index_as_stored_whatever_the_settings(engine: Engine) -> None:
    """A delete through an engine opened with another backbone (here one whose weights are not even on this
    machine) removes the pin from the stored index instead of throwing the index away."""
    pins = list(engine.catalog)
    with Engine.open(engine.settings.home, backbone="resnet50", binarizer="median") as other:
        assert other.delete([pins[0].pin_id]) == 1
        index = other.visual_index
        assert index is not None and len(index.codes) == 29 and index.model == engine.visual_index.model
    assert pins[0].pin_id not in [h.pin_id for h in engine.search(PinQuery(pins[1].pin_id), k=29)]


def test_searches_run_on_search_threads_and_batch_jobs_on_batch_threads(engine: Engine) -> None:
    """OpenMP counts threads per calling thread, so each search sets FAISS's count in its own thread."""
    import threading

    import faiss

    with Engine.open(engine.settings.home, batch_threads=1, search_threads=2) as tuned:
        seen = {}

        def search() -> None:
            tuned.search(file_query(caltech_image("pagoda", HELD_OUT)), k=3)
            seen["faiss"] = faiss.omp_get_max_threads()

        worker = threading.Thread(target=search)
        worker.start()
        worker.join()
        assert seen["faiss"] == 2 and tuned.searcher.embedder(tuned.visual_index.model).threads == 2
        tuned.index(progress=False)
        assert faiss.omp_get_max_threads() == 1 and tuned.embedder(tuned.feature_key).threads == 1


def test_a_damaged_generation_is_skipped_and_the_last_good_one_keeps_answering(engine: Engine) -> None:
    searcher = engine.searcher
    good = searcher.snapshot()
    index_dir = engine.settings.index_dir
    (index_dir / "visual-99.npz").write_bytes(b"not an index")
    (index_dir / "generation.json").write_text(
        '{"generation": 99, "files": {"visual": "visual-99.npz"}, "published_at": 1.0}'
    )
    pin = next(iter(engine.catalog))
    assert searcher.search(PinQuery(pin.pin_id), k=1)[0].pin_id == pin.pin_id  # answered from the good one
    assert searcher.snapshot() is good
    engine.delete([pin.pin_id])
    assert searcher.snapshot() is good  # the writer cannot read generation 99 either: nothing is published
    assert engine.index(progress=False).rebuilt  # so the next index rebuilds it from the catalog
    assert searcher.snapshot().generation.number == 100 and len(searcher.snapshot().visual.codes) == 29


def test_arguments_are_checked_before_any_work(engine: Engine) -> None:
    assert engine.search_many([], k=3) == []
    for k in (2.5, "3", True, 1001):
        with pytest.raises(BadArgumentError, match="k must be a whole number"):
            engine.search(PinQuery(next(iter(engine.catalog)).pin_id), k=k)
    with pytest.raises(BadArgumentError, match="cannot search by a bytes"):
        engine.search_many([PinQuery("x"), b"raw bytes"])


def test_relative_scores_for_sources_without_a_scale() -> None:
    from viscover.search import relative_scores

    assert relative_scores([12.0, 6.0, 0.0]) == [1.0, 0.5, 0.0]
    assert relative_scores([]) == [] and relative_scores([0.0]) == [0.0]


def test_the_detector_is_built_once_for_all_threads(engine: Engine) -> None:
    import threading

    from tests.conftest import coco_val_image

    built, found = [], []
    image = Image.open(coco_val_image(139)).convert("RGB")

    def detect() -> None:
        detector = engine.searcher.detector()
        built.append(detector)
        found.append({d.label for d in detector.detect(image, 0.5)})

    workers = [threading.Thread(target=detect) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len({id(d) for d in built}) == 1 and all({"tv", "chair"} <= labels for labels in found)


def test_pages_continue_where_the_last_ended_and_folded_results_never_return(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "dups" / "accordion"
    folder.mkdir(parents=True)
    original = Image.open(caltech_image("accordion", HELD_OUT)).convert("RGB")
    for name, level in (("a.png", 6), ("b.png", 1), ("c.png", 9)):  # one picture as three different files
        original.save(folder / name, compress_level=level)
    engine.ingest(folder.parent, progress=False)
    engine.index(progress=False)
    searcher = engine.searcher
    vector = searcher.embed([file_query(folder / "a.png")], engine.visual_index.model)[0]
    whole = searcher.stream(vector).hits(0, 40)
    paged_stream, paged = searcher.stream(vector), []
    while page := paged_stream.hits(len(paged), 4):
        paged += page
    assert [(h.rank, h.pin_id) for h in paged] == [(h.rank, h.pin_id) for h in whole]
    shown = [h.pin_id for h in paged]
    folded = [pin_id for h in paged for pin_id in h.near_duplicates]
    assert len(shown) == len(set(shown)) and not set(shown) & set(folded)
    assert len(shown) + len(folded) == 33 and len(folded) >= 2
    # a page can also start after a result named by its (distance, pin id), as a cursor does
    fresh = searcher.stream(vector)
    assert fresh.hits(0, 5) == whole[:5]
    assert fresh.hits(fresh.position_after(whole[4].distance, whole[4].key), 3) == whole[5:8]


def test_a_page_after_the_index_changed_starts_after_the_last_result_shown(engine: Engine) -> None:
    searcher = engine.searcher
    vector = searcher.embed([file_query(caltech_image("Motorbikes", HELD_OUT))], engine.visual_index.model)[0]
    first = searcher.stream(vector).hits(0, 6)
    engine.delete([first[5].pin_id])  # the last result shown is gone from the next generation
    newer = searcher.stream(vector)
    following = newer.hits(newer.position_after(first[5].distance, first[5].key), 6)
    assert following and not {h.pin_id for h in following} & {h.pin_id for h in first}
    assert all((h.distance, h.key) > (first[5].distance, first[5].key) for h in following)


def test_the_depth_of_results_is_capped(engine: Engine) -> None:
    with Engine.open(engine.settings.home, max_depth=12) as capped:
        vector = capped.searcher.embed([PinQuery(next(iter(capped.catalog)).pin_id)], capped.visual_index.model)[0]
        stream = capped.searcher.stream(vector)
        assert len(stream.hits(0, 12)) + sum(len(h.near_duplicates) for h in stream.hits(0, 12)) <= 12
        assert stream.hits(12, 5) == []
        with pytest.raises(BadArgumentError, match="between 1 and 12"):
            capped.search(PinQuery(next(iter(capped.catalog)).pin_id), k=13)
