"""Objects in the catalog (sections 6 and 8): detect every pin once, keep each object's box, label, score
and dominance, embed its padded crop, and index the codes apart from whole images. Object search then
finds similar objects and returns the scenes (pins) that hold them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from viscover.detect import create_detector, dominant_object, pad_box
from viscover.errors import BadImageError, NotIndexedError
from viscover.features import Binarizer
from viscover.index import VectorIndex, VisualIndex
from viscover.ingest import CropBox, Pin, StoredObject, load_image
from viscover.search.engine import Engine, Query


@dataclass
class ObjectsReport:
    pins: int = 0
    objects: int = 0
    dominant: int = 0
    indexed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SceneHit:
    """A scene that contains an object like the query: the pin, its best-matching object and distance."""

    rank: int
    pin: Pin
    distance: float
    object: StoredObject


def object_run(engine: Engine) -> str:
    """Names what produced stored objects; changing detector, threshold, context or features starts afresh."""
    s = engine.settings
    return f"{s.detector}@{s.min_score:g}|{engine.feature_key}|context={s.object_context:g}"


def index_objects(engine: Engine, progress: bool = True) -> ObjectsReport:
    """Detect and embed objects of pins not yet done by this run (resumable pin by pin), then rebuild the
    object index from every stored object."""
    settings, run = engine.settings, object_run(engine)
    report = ObjectsReport()
    todo = engine.catalog.pins_without_objects(run)
    if todo:
        detector = create_detector(settings.detector, settings)
        embedder = engine.embedder(settings.backbone, settings.layer)
        start = time.perf_counter()
        images = _decoded_ahead(todo, engine)
        for pin, image in tqdm(
            images, total=len(todo), desc=f"objects ({settings.detector})", unit="pin", disable=not progress
        ):
            if isinstance(image, BadImageError):
                report.failures.append((pin.location, str(image)))
                continue
            found = detector.detect(image, settings.min_score)
            dominant = dominant_object(found, *image.size, settings.dominant_area, settings.dominant_score)
            objects = [StoredObject(-1, pin.key, d.box, d.label, d.score, d is dominant) for d in found]
            crops = [image.crop(pad_box(d.box, settings.object_context, *image.size)) for d in found]
            vectors = embedder.embed(crops) if crops else np.zeros((0, 1), dtype=np.float32)
            engine.catalog.put_objects(run, pin.key, objects, vectors)
            report.pins += 1
            report.objects += len(objects)
            report.dominant += dominant is not None
        report.seconds = time.perf_counter() - start
    visual = _build_object_index(engine, run)
    report.indexed = len(visual.codes) if visual else 0
    return report


def _decoded_ahead(pins: list[Pin], engine: Engine) -> Iterator[tuple[Pin, Image.Image | BadImageError]]:
    """Pins with their decoded images (or the decoding error), decoded by worker threads a few pins ahead
    of the detector."""
    settings = engine.settings

    def decode(pin: Pin) -> Image.Image | BadImageError:
        try:
            return load_image(pin.location, settings.max_image_pixels, settings.fetch_timeout_s).image
        except BadImageError as exc:
            return exc

    with ThreadPoolExecutor(settings.decode_workers) as pool:
        ahead = 2 * settings.decode_workers
        futures = [pool.submit(decode, pin) for pin in pins[:ahead]]
        for i, pin in enumerate(pins):
            if i + ahead < len(pins):
                futures.append(pool.submit(decode, pins[i + ahead]))
            yield pin, futures[i].result()
            futures[i] = None  # let the decoded image go once used


def _object_index_path(engine: Engine) -> Path:
    return engine.settings.index_dir / "objects.npz"


def load_object_index(engine: Engine) -> VisualIndex | None:
    """The object index as last built by `index_objects`, or None before it has run."""
    return VisualIndex.load(_object_index_path(engine))


def _build_object_index(engine: Engine, run: str) -> VisualIndex | None:
    settings, path = engine.settings, _object_index_path(engine)
    ids, vectors = engine.catalog.object_vectors(run)
    if not len(ids):
        path.unlink(missing_ok=True)
        return None
    binarizer = Binarizer.fit(settings.binarizer, vectors, settings.code_bits)
    codes = VectorIndex.create(settings.index, "hamming", binarizer.bits)
    codes.add(ids, binarizer(vectors))
    visual = VisualIndex(run, binarizer, codes, len(ids), settings.code_bits)
    visual.save(path)
    return visual


def search_objects(engine: Engine, query: Query, crop: CropBox | None = None, k: int = 10) -> list[SceneHit]:
    """Object search (section 8): the k scenes whose best object is nearest the query (or its crop)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    visual = load_object_index(engine)
    if visual is None or not len(visual.codes):
        raise NotIndexedError(f"no object index under {engine.settings.home}: run `viscover objects` first")
    model = visual.model.split("|")[1]
    code = visual.binarizer(engine.embed_query(query, crop, model)[None])
    distances, ids = visual.codes.search(code, min(len(visual.codes), 20 * k + 50))
    found = ids[0] >= 0
    objects = {o.id: o for o in engine.catalog.objects(visual.model, ids=ids[0][found].tolist())}
    scenes: dict[int, tuple[float, StoredObject]] = {}
    for distance, object_id in zip(distances[0][found].tolist(), ids[0][found].tolist(), strict=True):
        nearest = objects.get(object_id)  # nearest first; None when its pin was deleted since indexing
        if nearest is not None and nearest.key not in scenes:
            scenes[nearest.key] = (distance, nearest)
    ranked = list(scenes.items())[:k]
    pins = engine.catalog.by_keys([key for key, _ in ranked])
    return [
        SceneHit(rank, pins[key], distance, nearest)
        for rank, (key, (distance, nearest)) in enumerate(ranked, start=1)
        if key in pins
    ]
