"""Flashlight (section 7) over the read path: results for a photo, a crop or an object, their annotations, and
the object dots worth showing (the engine's `Insight` judges them)."""

from __future__ import annotations

from dataclasses import dataclass

from viscover.search import Query, SearchHit, check_k
from viscover.search.annotations import Annotation
from viscover.search.insight import Dot, Insight


@dataclass(frozen=True)
class Look:
    """What Flashlight shows for a query: results, their annotations, and the dots (None for a crop)."""

    hits: list[SearchHit]
    annotations: list[Annotation]
    dots: list[Dot] | None


class Flashlight(Insight):
    """Flashlight over one shared `Searcher`; as thread-safe as the searcher."""

    def look(self, query: Query, k: int = 20, dots: bool | None = None) -> Look:
        """Results, annotations and (for whole images, when dots are on) dots for one query."""
        check_k(k, self.settings.max_depth)
        hits = self.searcher.search(query, max(k, self.settings.annotation_depth + 1))
        want_dots = self.showing_dots if dots is None else dots
        return Look(
            hits[:k],
            self.annotations_for(query, hits),
            self.dots(query) if want_dots and query.crop is None else None,
        )
