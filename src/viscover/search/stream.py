"""The results of one query vector as a stream that pages read from: candidates in a fixed order (distance,
then pin key), near-duplicates folded into the better result from the top, fetched deeper only when a page
needs it, up to a depth cap.

Because folding always starts from the top and the order is total, a page after the n-th result continues
exactly where the previous page ended: a folded result never comes back on a later page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from viscover.features import hamming_distances
from viscover.index import VisualIndex
from viscover.ingest import CatalogView, Pin
from viscover.search.results import SearchHit, similarity

Fetch = Callable[[int], tuple[np.ndarray, np.ndarray]]  # depth → (distances, keys) of the query, nearest first


@dataclass
class _Kept:
    pin: Pin
    distance: float
    code: np.ndarray
    near_duplicates: list[str] = field(default_factory=list)


class ResultStream:
    """Collapsed results of one query vector in one snapshot; thread-safe (pages of one query may race)."""

    def __init__(
        self,
        search: Fetch,
        visual: VisualIndex,
        catalog: CatalogView,
        metric: str,
        code_bits: int | None,
        radius: int,
        max_depth: int,
        first: tuple[int, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self._search, self._visual, self._catalog = search, visual, catalog
        self.metric, self.code_bits, self._radius = metric, code_bits, radius
        self._max_depth = min(max_depth, len(visual.codes))
        self._kept: list[_Kept] = []
        self._codes = np.zeros((0, 0), dtype=np.uint8)  # the kept results' codes, rows grown by doubling
        self._done: tuple[float, int] = (-np.inf, -1)  # every candidate up to here (distance, key) is folded
        self._depth = 0
        self._exhausted = False
        self._lock = threading.Lock()
        if first is not None:  # a fetch already made (search_many searches a batch of queries at once)
            self._take(*first)

    def hits(self, start: int, count: int) -> list[SearchHit]:
        """Results start+1 … start+count (fewer at the end of the stream), ranked from 1 at the top."""
        with self._lock:
            while len(self._kept) < start + count and not self._exhausted:
                self._deepen(start + count)
            return [
                SearchHit(
                    rank,
                    kept.pin,
                    "visual",
                    self.metric,
                    kept.distance,
                    self.code_bits,
                    similarity(self.metric, kept.distance, self.code_bits),
                    near_duplicates=tuple(kept.near_duplicates),
                )
                for rank, kept in enumerate(self._kept[start : start + count], start=start + 1)
            ]

    def position_after(self, distance: float, key: int) -> int:
        """How many results come up to and including the one at (`distance`, pin `key`): where the next page
        starts. If that pin is gone (deleted, or folded in a newer index), the page starts at the first result
        after it in the stream's order (distance, then key)."""
        with self._lock:
            while not self._exhausted and (not self._kept or self._kept[-1].distance <= distance):
                self._deepen(len(self._kept) + 1)
            for position, kept in enumerate(self._kept):
                if kept.pin.key == key:
                    return position + 1
            return sum(1 for kept in self._kept if (kept.distance, kept.pin.key) <= (distance, key))

    def _deepen(self, wanted: int) -> None:
        """Fetch deeper: twice as deep as before, or as deep as `wanted` results may need, within the cap."""
        depth = min(max(2 * self._depth, 2 * wanted + 10), self._max_depth)
        self._take(depth, *self._search(depth))

    def _take(self, depth: int, distances: np.ndarray, keys: np.ndarray) -> None:
        """Fold the nearest `depth` candidates into the results. Candidates tied at the fetch's farthest
        distance may continue past it, so they wait for a deeper fetch unless nothing lies deeper."""
        found = keys >= 0
        order = np.lexsort((keys[found], distances[found]))
        distances, keys = distances[found][order].astype(float), keys[found][order]
        self._depth = depth
        self._exhausted = len(keys) < depth or depth >= self._max_depth
        boundary = np.inf if self._exhausted else distances[-1]
        fresh = [
            (d, k)
            for d, k in zip(distances.tolist(), keys.tolist(), strict=True)
            if (d, k) > self._done and d < boundary
        ]
        if not fresh:
            return
        with self._catalog.snapshot():
            pins = self._catalog.by_keys([k for _, k in fresh])
            stored, vectors = self._catalog.features(self._visual.model, [k for _, k in fresh])
        code_of = dict(zip(stored.tolist(), self._visual.binarizer.transform(vectors), strict=True))
        for distance, key in fresh:
            if key in pins and key in code_of:  # skip pins deleted since the index was published
                self._fold(_Kept(pins[key], distance, code_of[key]))
        self._done = fresh[-1]

    def _fold(self, candidate: _Kept) -> None:
        count = len(self._kept)
        if count:
            near = hamming_distances(candidate.code, self._codes[:count])
            closest = int(np.argmin(near))
            if near[closest] <= self._radius:
                self._kept[closest].near_duplicates.append(candidate.pin.pin_id)
                return
        if count == len(self._codes):
            grown = np.zeros((max(16, 2 * count), len(candidate.code)), dtype=np.uint8)
            if count:
                grown[:count] = self._codes
            self._codes = grown
        self._codes[count] = candidate.code
        self._kept.append(candidate)
