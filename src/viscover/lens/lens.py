"""Lens (section 8 of the paper): a photo in; what viscover understands of it, and one feed blended from visual
search, text search with the photo's annotations, and object search for scenes holding its objects.

A source is asked only when its trigger holds, as in the paper: text search only when the top annotation is
confident enough, object search only when a detected object passed the dot filter. A steering term (a clicked
annotation or colour) narrows every source to pins carrying it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image

from viscover.ingest.text import user_term
from viscover.lens.blend import Candidate, Placed, SourceResults, SourceShare, blend
from viscover.lens.colours import Colour, colours_and_backdrop
from viscover.search import (
    Annotation,
    Dot,
    ImageQuery,
    Insight,
    PinQuery,
    Query,
    Searcher,
    SearchHit,
    Snapshot,
    check_k,
)
from viscover.search.annotations import conformity


@dataclass(frozen=True)
class Understanding:
    """What Lens understood of a photo (the paper's Figure 12, left)."""

    width: int
    height: int
    annotations: list[Annotation]
    objects: list[Dot]  # every detected object with its signals; `shown` ones passed the dot filter
    colours: list[Colour]
    category: str | None  # the commonest category among the visual results
    conformity: float  # the share of those results with it


@dataclass
class Stages:
    """Seconds spent in each stage of a request, to show where the time goes."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


@dataclass(frozen=True)
class LensResult:
    understanding: Understanding
    feed: list[Placed]
    mix: list[SourceShare]
    term: str | None  # the steering term, if any
    seconds: dict[str, float]  # per stage


class Lens:
    """Lens over one shared `Searcher`; as thread-safe as the searcher."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.settings = searcher.settings
        self.insight = Insight(searcher)

    def look(self, query: Query, k: int = 20, term: str | None = None) -> LensResult:
        """Understand a photo (or a catalog pin, itself left out of its feed) and blend `k` results, steered to
        pins carrying `term` (written as annotations write terms) when one is given."""
        check_k(k, self.settings.max_depth)
        term = None if term is None else user_term(term)
        stages = Stages()
        depth = min(max(k, self.settings.lens_depth), max(1, self.settings.max_depth - 1))  # sources read one more
        understanding, sources = self.sources(query, depth, term, stages)
        with stages.timed("blend"):
            feed, mix = blend(sources, k)
        return LensResult(understanding, feed, mix, term, stages.seconds)

    def sources(
        self, query: Query, depth: int, term: str | None = None, stages: Stages | None = None
    ) -> tuple[Understanding, list[SourceResults]]:
        """What Lens understood of the query, and what each source offers (`depth` candidates at most)."""
        settings = self.settings
        stages = stages or Stages()
        with stages.timed("decode"):
            image = self.insight.query_image(query)
            own = self.searcher.pin(query.pin_id).key if isinstance(query, PinQuery) else None
        snapshot = self.searcher.snapshot()  # one index generation for the whole request
        with stages.timed("visual search + annotations"):
            visual = self.searcher.require_index(snapshot.visual)
            stream = self.searcher.stream(self.searcher.embed([query], visual.model)[0], snapshot=snapshot)
            first = [hit for hit in stream.hits(0, settings.annotation_depth + 1) if hit.key != own]
            annotations = self.insight.annotations(first, exclude_key=own)
            category, share = _category(first[: settings.annotation_depth])
            visual_hits = self.insight.narrowed(stream, term, 0, depth + 1) if term else stream.hits(0, depth + 1)
            visual_source = self._visual([hit for hit in visual_hits if hit.key != own][:depth])
        with stages.timed("detect + dot filter"):
            objects = self.insight.dots(query, image)
        with stages.timed("colours"):
            colours, product_shot = colours_and_backdrop(image)
        with stages.timed("text search"):
            text_source = self._text(annotations, term, own, depth)
        with stages.timed("object search"):
            object_source = self._objects(image, product_shot, objects, term, own, depth, snapshot)
        understanding = Understanding(image.width, image.height, annotations, objects, colours, category, share)
        return understanding, [visual_source, text_source, object_source]

    # -- sources -------------------------------------------------------------------------------------------

    def _enabled(self, name: str) -> bool:
        return name in self.settings.lens_sources

    def _visual(self, hits: list[SearchHit]) -> SourceResults:
        if not self._enabled("visual"):
            return SourceResults("visual", False, "off in settings: lens_sources")
        candidates = [
            Candidate(hit, f"visually similar (similarity {hit.similarity:.2f})", {"similarity": hit.similarity})
            for hit in hits
        ]
        return SourceResults("visual", True, "always", 1.0, candidates)  # the precisions' reference

    def _text(self, annotations: list[Annotation], term: str | None, own: int | None, depth: int) -> SourceResults:
        """Text search with the top annotations, one query each, fused by annotation score (each hit's BM25
        relative to its query's best, times the annotation's score); or with the steering term alone."""
        settings = self.settings
        if not self._enabled("text"):
            return SourceResults("text", False, "off in settings: lens_sources")
        top = annotations[0].score if annotations else 0.0
        if term:
            asked, reason = [Annotation(term, 1.0)], f"steered to {term!r}"
        elif top < settings.lens_text_min_annotation or not annotations:
            return SourceResults(
                "text", False, f"top annotation {top:.3f} under the trigger {settings.lens_text_min_annotation:g}"
            )
        else:
            asked = annotations[: settings.lens_text_queries]
            reason = f"top annotation {top:.3f} ≥ {settings.lens_text_min_annotation:g}"
        fused: dict[int, tuple[float, SearchHit, list[str]]] = {}
        for annotation in asked:
            for hit in self.searcher.search_text(annotation.term, depth + 1):
                if hit.key == own:
                    continue
                score, first, terms = fused.get(hit.key, (0.0, hit, []))
                fused[hit.key] = (score + annotation.score * hit.similarity, first, [*terms, annotation.term])
        ranked = sorted(fused.values(), key=lambda item: (-item[0], item[1].key))[:depth]
        if term and not ranked:
            reason = f"steered to {term!r}, which no pin's text holds"
        candidates = [
            Candidate(hit, "text: " + ", ".join(f"“{t}”" for t in terms), {"score": score, "annotation": top})
            for score, hit, terms in ranked
        ]
        confidence = float("inf") if term else top  # a steer is the user's own word: the surest bucket
        return SourceResults("text", True, reason, precision_at(settings.lens_text_precision, confidence), candidates)

    def _objects(
        self,
        image: Image.Image,
        product_shot: bool,
        objects: list[Dot],
        term: str | None,
        own: int | None,
        depth: int,
        snapshot: Snapshot,
    ) -> SourceResults:
        """Scenes holding objects like the detected ones that passed the dot filter, or like the photo itself
        when it is a product shot (a plain backdrop: the paper's Figure 14 query), all searched in one batch; a
        scene found by several keeps its most similar."""
        settings = self.settings
        if not self._enabled("object"):
            return SourceResults("object", False, "off in settings: lens_sources")
        passed = sorted((dot for dot in objects if dot.shown), key=lambda dot: -dot.score)
        asked = [(f"the {dot.label}", dot.box.padded(settings.object_context, *image.size)) for dot in passed]
        asked = asked[: settings.lens_objects]
        if product_shot:
            asked.insert(0, ("this product", None))
        if not asked:
            return SourceResults("object", False, "no detected object passed the dot filter, and it is no product shot")
        if snapshot.objects is None:
            return SourceResults("object", False, "no object index in this home (run `viscover objects`)")
        queries = [ImageQuery(image, box) for _, box in asked]
        best: dict[int, tuple[SearchHit, str]] = {}
        for (what, _), hits in zip(asked, self.searcher.search_objects_many(queries, depth + 1, snapshot), strict=True):
            for hit in hits:
                if hit.key != own and (hit.key not in best or hit.similarity > best[hit.key][0].similarity):
                    best[hit.key] = (hit, what)
        ranked = sorted(best.values(), key=lambda item: (-item[0].similarity, item[0].key))
        if term:
            carrying = self.searcher.catalog.keys_with_term(term, [hit.key for hit, _ in ranked])
            ranked = [item for item in ranked if item[0].key in carrying]
        candidates = [
            Candidate(
                hit,
                f"a scene holding an object like {what} (similarity {hit.similarity:.2f})",
                {"similarity": hit.similarity},
            )
            for hit, what in ranked[:depth]
        ]
        reason = "searched " + ", ".join(what for what, _ in asked)
        if len(passed) > settings.lens_objects:
            reason += f" (the best {settings.lens_objects} of {len(passed)} objects that passed the dot filter)"
        return SourceResults("object", True, reason, settings.lens_object_precision, candidates)


def _category(hits: Sequence[SearchHit]) -> tuple[str | None, float]:
    """The commonest category among the hits that have one, and its share of them (the conformity)."""
    counts = Counter(hit.pin.category for hit in hits if hit.pin.category)
    return (counts.most_common(1)[0][0], conformity(hits)) if counts else (None, 0.0)


def precision_at(buckets: Sequence[tuple[float, float]], confidence: float) -> float:
    """The precision of the highest bucket whose least confidence `confidence` reaches; under them all (a
    trigger set lower than anything measured), the lowest bucket's."""
    ordered = sorted(buckets)
    reached = [precision for least, precision in ordered if confidence >= least]
    return reached[-1] if reached else ordered[0][1] if ordered else 0.0
