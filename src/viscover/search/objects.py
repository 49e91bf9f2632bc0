"""Objects in the catalog (sections 6 and 8): detect every pin once, keep each object's box, label, score
and dominance (and, with `object_windows`, class-agnostic sliding windows beside them), embed each padded
crop, and index the codes apart from whole images. Object search
(`Searcher.search_objects`) then finds similar objects and returns the scenes (pins) that hold them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from viscover.config import Settings
from viscover.detect import REGION, Detector, create_detector, dominant_object, windows
from viscover.errors import BadImageError
from viscover.features import Embedder
from viscover.index import VisualIndex
from viscover.ingest import ObjectRun, Pin, StoredObject, decode_crops, decode_image, read_bytes
from viscover.search.engine import BatchRunner, Engine, coded_index


@dataclass
class ObjectsReport:
    pins: int = 0  # detected by this call
    objects: int = 0  # found by this call
    windows: int = 0  # of them, sliding windows
    dominant: int = 0  # pins of the run with a dominant object, after this call
    remarked: bool = False  # the dominance rule changed: stored objects were marked again, not detected again
    indexed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


def object_run(settings: Settings, model: str) -> str:
    """Names what produced stored objects: detector, threshold, feature space, context and windows. Changing
    any of them detects afresh; the dominance rule only re-marks stored objects."""
    return str(
        ObjectRun(settings.detector, settings.min_score, model, settings.object_context, settings.object_windows)
    )


@dataclass
class DetectedPin:
    """One pin's objects as detected (not yet stored: `id` -1) with their crops' vectors, or why it failed."""

    key: int
    objects: list[StoredObject] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.float32))
    windows: int = 0
    failure: str | None = None


def detect_pin(
    detector: Detector, embedder: Embedder, settings: Settings, key: int, location: str, data: bytes, image: Image.Image
) -> DetectedPin:
    """The objects of one decoded pin: the detector's boxes (the dominant one marked by the settings' rule)
    and, with `object_windows`, the sliding windows; each padded crop embedded. In this process or on Ray."""
    found = detector.detect(image, settings.min_score)
    dominant = dominant_object(found, *image.size, settings.dominant_area, settings.dominant_score)
    regions = windows(*image.size) if settings.object_windows else []  # a window never dominates
    found += regions
    objects = [StoredObject(-1, key, d.box, d.label, d.score, d is dominant) for d in found]
    # each crop decoded as a query for that box would be, so searching it finds this object at 0
    boxes = [d.box.padded(settings.object_context, *image.size) for d in found]
    crops = decode_crops(data, location, embedder.preprocess.resize, settings.max_image_pixels, boxes)
    vectors = embedder.embed(crops) if crops else np.zeros((0, 1), dtype=np.float32)
    return DetectedPin(key, objects, vectors, len(regions))


def index_objects(
    engine: Engine, progress: bool = True, only: Collection[int] | None = None, runner: BatchRunner | None = None
) -> ObjectsReport:
    """Detect and embed objects of pins not yet done by this run, here or on `runner` (resumable pin by pin;
    `only` these pin keys, if given), mark dominant objects by the settings' rule, then publish the object
    index rebuilt from every stored object of the run."""
    with engine.writing():
        settings, model = engine.settings, engine.feature_key
        run, rule = object_run(settings, model), (settings.dominant_area, settings.dominant_score)
        report = ObjectsReport()
        todo = [pin for pin in engine.catalog.pins_without_objects(run) if only is None or pin.key in only]
        if todo:
            start = time.perf_counter()
            locations = {pin.key: pin.location for pin in todo}
            detected = _detect_here(engine, todo, progress) if runner is None else runner.detect(run, todo, progress)
            for pin in detected:
                if pin.failure is not None:
                    report.failures.append((locations[pin.key], pin.failure))
                    continue
                engine.catalog.put_objects(run, pin.key, pin.objects, pin.vectors)
                report.pins += 1
                report.objects += len(pin.objects)
                report.windows += pin.windows
            report.seconds = time.perf_counter() - start
        previous_rule = engine.catalog.dominance_rule(run)
        if previous_rule != rule:
            _mark_dominant(engine, run, rule)
            report.remarked = previous_rule is not None
        report.dominant = sum(o.dominant for o in engine.catalog.objects(run))
        visual = engine.published_indexes().get("objects")
        indexed = np.sort(visual.codes.ids()) if visual is not None and visual.model == run else None
        if indexed is None or not np.array_equal(indexed, engine.catalog.object_ids(run)):
            rebuilt = _object_index(engine, run)  # stored objects changed (or a delete died before publishing)
            if rebuilt is not None or visual is not None:
                generation = engine.store.publish(objects=rebuilt)
                if runner is not None and rebuilt is not None:
                    runner.published(generation.name("objects"), rebuilt)
            visual = rebuilt
        report.indexed = len(visual.codes) if visual else 0
        return report


def _detect_here(engine: Engine, pins: list[Pin], progress: bool) -> Iterator[DetectedPin]:
    """`detect_pin` over `pins` in this process, decoding a few pins ahead of the detector."""
    settings = engine.settings
    detector = create_detector(settings.detector, settings, settings.threads)
    embedder = engine.embedder(engine.feature_key)
    for pin, decoded in tqdm(
        _decoded_ahead(pins, settings),
        total=len(pins),
        desc=f"objects ({settings.detector})",
        unit="pin",
        disable=not progress,
    ):
        if isinstance(decoded, BadImageError):
            yield DetectedPin(pin.key, failure=str(decoded))
        else:
            yield detect_pin(detector, embedder, settings, pin.key, pin.location, *decoded)


def _mark_dominant(engine: Engine, run: str, rule: tuple[float, float]) -> None:
    """Flag each pin's dominant object among its stored ones by `rule`, without detecting again."""
    by_pin: dict[int, list[StoredObject]] = defaultdict(list)
    for stored in engine.catalog.objects(run):
        if stored.label != REGION:  # a window never dominates
            by_pin[stored.key].append(stored)
    pins = engine.catalog.by_keys(list(by_pin))
    dominant = [
        chosen.id
        for key, objects in by_pin.items()
        if key in pins and (chosen := dominant_object(objects, pins[key].width, pins[key].height, *rule))
    ]
    engine.catalog.set_dominance(run, rule, dominant)


def _decoded_ahead(
    pins: list[Pin], settings: Settings
) -> Iterator[tuple[Pin, tuple[bytes, Image.Image] | BadImageError]]:
    """Pins with their bytes and decoded images (or the decoding error), decoded by worker threads a few pins
    ahead of the detector."""

    def decode(pin: Pin) -> tuple[bytes, Image.Image] | BadImageError:
        try:
            data = read_bytes(pin.location, settings.fetch_timeout_s)
            return data, decode_image(data, pin.location, settings.max_image_pixels).image
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


def _object_index(engine: Engine, run: str) -> VisualIndex | None:
    ids = engine.catalog.object_ids(run)
    return coded_index(run, ids, engine.vector_reader("objects", run), engine.settings) if len(ids) else None
