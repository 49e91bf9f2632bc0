"""What visual search says about a query beyond its results (sections 7 and 8): the results' annotations, the
detected objects visual search is confident about (dots), and results narrowed to an annotation. Flashlight
and Lens both show them.

A dot is an object the detector found *and* visual search is confident about (Table 5): each box is searched
(all boxes in one batch), and three signals of its results must pass their thresholds besides the detector's
score: the top result's similarity, the top annotation's score, and category conformity. Conformity is by
default the share of the top results in which the detector saw the dot's own label, which catches both of the
paper's failures (a hallucinated box, unrelated results); the paper's largest share of one category is the
other choice.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_args

from PIL import Image

from viscover.box import Box
from viscover.config import Settings
from viscover.detect import REGION, Detection
from viscover.errors import BadSettingError
from viscover.ingest import Pin, decode_image
from viscover.search.annotations import Annotation, annotate, conformity, label_share
from viscover.search.queries import ImageQuery, PinQuery, Query
from viscover.search.results import SearchHit
from viscover.search.searcher import Searcher
from viscover.search.stream import ResultStream
from viscover.storage import atomic_path

THRESHOLDS_FILE = "flashlight/dots.json"
THRESHOLDS_VERSION = 2  # 2: with the measure of conformity the thresholds were tuned for
SIGNALS = ("detector", "similarity", "annotation", "conformity")  # what DotThresholds sets a least value for
MEASURES = get_args(Settings.model_fields["dot_conformity"].annotation)  # of conformity: "label", "largest"
VERSION_1_MEASURE = ("largest", 20)  # what version-1 thresholds were tuned for: the largest share of 20 results
NARROW_CHUNK = 50  # results read at a time while narrowing to a term


@dataclass(frozen=True)
class DotThresholds:
    """The least each signal must reach for a detected box to be shown as a dot, and how conformity is measured
    for them (a conformity threshold means nothing apart from its measure): `measure` as the settings'
    `dot_conformity`, over the top `depth` results."""

    detector: float
    similarity: float
    annotation: float
    conformity: float
    measure: str
    depth: int

    def passes(self, dot: Dot) -> bool:
        return (
            dot.score >= self.detector
            and dot.similarity >= self.similarity
            and dot.annotation >= self.annotation
            and dot.conformity >= self.conformity
        )


@dataclass(frozen=True)
class Dot:
    """A detected box with the signals of its visual search, and whether it passed the thresholds."""

    box: Box
    label: str
    score: float  # the detector's
    similarity: float  # of the box's top result
    annotation: float  # score of the box's top annotation (0 without any)
    conformity: float  # share of the box's top results with its label (or with their commonest category)
    shown: bool


class Insight:
    """Annotations, dots and narrowing over one shared `Searcher`; as thread-safe as the searcher."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.settings = searcher.settings
        self._saved: tuple[int, DotThresholds] | None = None  # (mtime_ns, thresholds) of this home's file
        self._pins: tuple[int, int] | None = None  # (index generation, pins in the catalog then)

    # -- annotations ---------------------------------------------------------------------------------------

    def annotations(self, hits: Sequence[SearchHit], exclude_key: int | None = None) -> list[Annotation]:
        """The annotations of a result list: its top `annotation_depth` pins but the query's own; those
        scoring under `annotation_min_score` are not shown."""
        settings = self.settings
        shown = [hit for hit in hits if hit.key != exclude_key][: settings.annotation_depth]
        terms = self.searcher.catalog.term_counts([hit.key for hit in shown], settings.annotation_min_df)
        found = annotate(shown, terms, self._pin_count(), settings.annotation_method, settings.annotation_count)
        return [a for a in found if a.score >= settings.annotation_min_score]

    def _pin_count(self) -> int:
        """The catalog's size for idf, counted once per index generation: counting 100,000 rows takes 3 ms, and
        pins ingested but not yet indexed barely move an idf."""
        generation = self.searcher.snapshot().generation.number
        counted = self._pins
        if counted is None or counted[0] != generation:
            counted = self._pins = (generation, len(self.searcher.catalog))
        return counted[1]

    def annotations_for(self, query: Query, hits: Sequence[SearchHit]) -> list[Annotation]:
        """The annotations of a query's results (a catalog pin's own pin left out: it would annotate itself)."""
        own = self.searcher.pin(query.pin_id).key if isinstance(query, PinQuery) else None
        return self.annotations(hits, exclude_key=own)

    def narrowed(self, stream: ResultStream, term: str, start: int, count: int) -> list[SearchHit]:
        """Up to `count` results from position `start` of `stream` whose pins carry `term`, in visual order
        (reading deeper as needed, up to the depth cap)."""
        found: list[SearchHit] = []
        position = start
        while len(found) < count:
            chunk = stream.hits(position, NARROW_CHUNK)
            if not chunk:
                break
            position += len(chunk)
            carrying = self.searcher.catalog.keys_with_term(term, [hit.key for hit in chunk])
            found.extend(hit for hit in chunk if hit.key in carrying)
        return found[:count]

    # -- dots ----------------------------------------------------------------------------------------------

    @property
    def showing_dots(self) -> bool:
        """Whether dots are on: as the settings say, or (unset) where `viscover objects` has stored this home's
        objects: a dot's conformity reads them, and a home without them may lack the detector's model files."""
        wanted = self.settings.dots
        return self.searcher.snapshot().objects is not None if wanted is None else wanted

    @property
    def thresholds(self) -> DotThresholds:
        """This home's dot filter as `viscover eval dots --apply` wrote it (read again when the file changes;
        its measure of conformity with it), else the settings'."""
        path = self.settings.home / THRESHOLDS_FILE
        try:
            changed = path.stat().st_mtime_ns
        except FileNotFoundError:
            s = self.settings
            return DotThresholds(
                s.dot_min_detector,
                s.dot_min_similarity,
                s.dot_min_annotation,
                s.dot_min_conformity,
                s.dot_conformity,
                s.dot_conformity_depth,
            )
        saved = self._saved
        if saved is None or saved[0] != changed:
            saved = self._saved = (changed, read_thresholds(path))
        return saved[1]

    def dots(self, query: Query, image: Image.Image | None = None) -> list[Dot]:
        """The query's detected objects (stored ones for a catalog pin, the detector's for an image), each
        searched, all in one batch, and judged by the thresholds. `image` is the query's, if decoded already."""
        thresholds = self.thresholds
        own = self.searcher.pin(query.pin_id) if isinstance(query, PinQuery) else None
        image = image or self.query_image(query)
        found = [d for d in self._detections(image, own) if d.score >= thresholds.detector]
        exclude = {own.key} if own else set()
        return [dot for dot, _ in self.judge(image, found, exclude, thresholds)]

    def judge(
        self,
        image: Image.Image,
        detections: Sequence[Detection],
        exclude: Collection[int],
        thresholds: DotThresholds,
    ) -> list[tuple[Dot, list[SearchHit]]]:
        """Each detection's box (grown by the object context) searched, all in one batch, without the pins in
        `exclude`; its signals, whether it passes `thresholds` (conformity measured as they say), and the results
        the signals came from."""
        if not detections:
            return []
        boxes = [d.box.padded(self.settings.object_context, *image.size) for d in detections]
        depth = max(self.settings.annotation_depth, thresholds.depth)
        results = self.searcher.search_many([ImageQuery(image, box) for box in boxes], k=depth + len(exclude))
        kept = [[hit for hit in hits if hit.key not in exclude][:depth] for hits in results]
        tops = [hits[: thresholds.depth] for hits in kept]
        labels = self.result_labels(tops) if thresholds.measure == "label" else None
        judged = []
        for detection, hits, top in zip(detections, kept, tops, strict=True):
            annotations = self.annotations(hits)
            dot = Dot(
                detection.box,
                detection.label,
                detection.score,
                hits[0].similarity if hits else 0.0,
                annotations[0].score if annotations else 0.0,
                conformity(top) if labels is None else label_share(top, detection.label.casefold(), labels),
                shown=False,
            )
            judged.append((dataclasses.replace(dot, shown=thresholds.passes(dot)), hits))
        return judged

    def result_labels(self, results: Sequence[Sequence[SearchHit]]) -> dict[int, set[str]]:
        """Each result pin's labels in the detector's words, case-folded: its stored objects' (`viscover
        objects`; none where it found nothing), or its category where the published object run has not looked."""
        pins = {hit.key: hit.pin for hits in results for hit in hits}
        objects = self.searcher.snapshot().objects
        stored = self.searcher.catalog.object_labels(objects.model, list(pins)) if objects is not None else {}
        return {
            key: {label.casefold() for label in stored.get(key, [pin.category] if pin.category else [])}
            for key, pin in pins.items()
        }

    def _detections(self, image: Image.Image, own: Pin | None) -> list[Detection]:
        """A catalog pin's objects as `viscover objects` stored them; otherwise the detector's."""
        objects = self.searcher.snapshot().objects
        if own is not None and objects is not None and self.searcher.catalog.was_detected(objects.model, own.key):
            stored = self.searcher.catalog.objects(objects.model, key=own.key)
            return [Detection(o.box, o.label, o.score) for o in stored if o.label != REGION]  # no windows
        return self.searcher.detector().detect(image, self.thresholds.detector)

    def query_image(self, query: Query) -> Image.Image:
        """The query's full-size image (boxes are in its pixels)."""
        if isinstance(query, ImageQuery):
            return query.image.convert("RGB")
        if isinstance(query, PinQuery):
            pin = self.searcher.pin(query.pin_id)
            return decode_image(pin.image_bytes(self.settings.fetch_timeout_s), pin.pin_id).image
        return decode_image(query.data, query.name, self.settings.max_image_pixels).image


def read_thresholds(path: Path) -> DotThresholds:
    """A home's saved dot filter (a version-1 file, from before the measure was recorded, was tuned for the
    paper's largest share of 20 results); a file this version cannot read is an error that names it."""
    try:
        saved = json.loads(path.read_text())
        version = saved.get("version")
        if version not in (1, THRESHOLDS_VERSION):
            raise ValueError(f"version {version!r}, this viscover reads 1 and {THRESHOLDS_VERSION}")
        measure, depth = (
            VERSION_1_MEASURE
            if version == 1
            else (str(saved["conformity"]["measure"]), int(saved["conformity"]["depth"]))
        )
        if measure not in MEASURES or depth < 1:
            raise ValueError(f"conformity measured as {measure!r} over {depth} results")
        values = saved["thresholds"]
        return DotThresholds(
            *(float(values[signal]) for signal in SIGNALS),
            measure,
            depth,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadSettingError(
            f"{path} holds no dot thresholds this viscover can read ({exc}): run `viscover eval dots --apply` "
            "again, or delete it to use the settings' thresholds"
        ) from None


def write_thresholds(home: Path, thresholds: DotThresholds, evaluation: str) -> Path:
    """Save a home's dot filter (what `eval dots --apply` does): the thresholds and the measure of conformity
    they were tuned for, versioned, atomically. It overrides the settings' filter, measure included."""
    path = home / THRESHOLDS_FILE
    values = asdict(thresholds)
    record = {
        "version": THRESHOLDS_VERSION,
        "thresholds": {signal: values[signal] for signal in SIGNALS},
        "conformity": {"measure": thresholds.measure, "depth": thresholds.depth},
        "evaluation": evaluation,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record))
    return path
