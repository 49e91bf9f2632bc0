"""The read path: one `Searcher` shared by every thread of a process (a server's requests, a script's workers).

It searches an immutable snapshot {visual index, object index} of one published generation and swaps it whole
when a writer publishes a new one: each call reads the small generation file, and a new generation is loaded
once, by one thread, while the others go on answering from the snapshot they have. The catalog is read through
per-thread read-only connections. Embedders and the detector are built once, under a lock, on first use.
No lock is taken on the search path itself.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from viscover.config import Settings
from viscover.detect import Detector, create_detector
from viscover.errors import BadArgumentError, NotIndexedError, UnknownNameError
from viscover.features import Embedder
from viscover.home import prepare_home
from viscover.index import METRICS, Generation, IndexStore, RawVectors, VisualIndex
from viscover.ingest import CatalogReader, ObjectRun, Pin, StoredObject
from viscover.ingest.images import decode_for_model
from viscover.search.queries import BytesQuery, ImageQuery, PinQuery, Query
from viscover.search.results import SearchHit, relative_scores, similarity, unit_vectors
from viscover.search.stream import ResultStream
from viscover.threads import limit_threads

log = logging.getLogger(__name__)

T = TypeVar("T")
# (generation, kind, index as loaded) → the index to search: the same one, or its codes served elsewhere (a cluster)
Placement = Callable[[Generation, str, VisualIndex], VisualIndex]


@dataclass(frozen=True)
class Snapshot:
    """The indexes of one published generation; never changed once made, so threads share it freely."""

    generation: Generation
    visual: VisualIndex | None
    objects: VisualIndex | None


class Searcher:
    """Visual and object search over a home, safe to share between threads, following the writer's updates."""

    def __init__(self, settings: Settings, place: Placement | None = None) -> None:
        """`place` decides where a newly loaded index is searched (see `Placement`): in this process by default."""
        prepare_home(settings)
        self.settings = settings
        self._place = place
        self.catalog = CatalogReader(settings.catalog_path)
        self._store = IndexStore(settings.index_dir)
        self._snapshot = self._load_snapshot(Snapshot(Generation(), None, None))
        self._unloadable: Generation | None = None  # a generation that failed to load: not tried again
        self._refresh_lock = threading.Lock()
        self._build_locks: dict[object, threading.Lock] = {}
        self._build_locks_lock = threading.Lock()
        self._built: dict[object, object] = {}

    @classmethod
    def open(cls, home: Path | str | None = None, **overrides: object) -> Searcher:
        """A searcher over the home `home`; `overrides` are Settings fields."""
        return cls(Settings.load(home, **overrides))

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- snapshot ---------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current snapshot; reloaded first when a writer has published a new generation since."""
        current = self._snapshot
        published = self._store.current()
        if published in (current.generation, self._unloadable) or not self._refresh_lock.acquire(blocking=False):
            return current  # unchanged, known bad, or another thread is loading it: answer from this one
        try:
            if self._snapshot is current:
                self._snapshot = self._load_snapshot(current)
            return self._snapshot
        except Exception:  # a damaged or vanished file: keep answering from the last good generation
            log.exception(
                "index generation %d could not be loaded; still serving %d", published.number, current.generation.number
            )
            self._unloadable = published
            return current
        finally:
            self._refresh_lock.release()

    def _load_snapshot(self, previous: Snapshot) -> Snapshot:
        """The published generation, reusing the indexes whose files did not change."""
        kept = {
            previous.generation.files[kind]: index
            for kind, index in (("visual", previous.visual), ("objects", previous.objects))
            if index is not None
        }
        generation, indexes = self._store.load(kept)
        for kind, index in list(indexes.items()):
            if not any(index is reused for reused in kept.values()):  # newly read: tune it, then place it
                index.codes.tune(self.settings.index_nprobe, self.settings.index_ef_search)
                if self._place is not None:
                    indexes[kind] = self._place(generation, kind, index)
        return Snapshot(generation, indexes.get("visual"), indexes.get("objects"))

    # -- search -----------------------------------------------------------------------------------------

    def search(self, query: Query, k: int = 10, metric: str = "hamming") -> list[SearchHit]:
        """The top-k pins nearest a query (or its crop), near-duplicates folded into the better result."""
        return self.search_many([query], k, metric)[0]

    def search_many(self, queries: Sequence[Query], k: int = 10, metric: str = "hamming") -> list[list[SearchHit]]:
        """`search` for a batch of queries: the images are embedded in one batch and searched in one call."""
        check_k(k, self.settings.max_depth)
        _check_queries(queries)
        if not queries:
            return []
        snapshot = self.snapshot()
        visual = self.require_index(snapshot.visual, "index")
        vectors = self.embed(queries, visual.model)
        depth = min(2 * k + 10, self.settings.max_depth)
        distances, keys = self._searcher_of(snapshot, metric)(vectors, depth)  # one index call for the batch
        return [
            self.stream(vector, metric, snapshot, first=(depth, row_distances, row_keys)).hits(0, k)
            for vector, row_distances, row_keys in zip(vectors, distances, keys, strict=True)
        ]

    def stream(
        self,
        vector: np.ndarray,
        metric: str = "hamming",
        snapshot: Snapshot | None = None,
        first: tuple[int, np.ndarray, np.ndarray] | None = None,
    ) -> ResultStream:
        """The results of a raw query vector (from `embed`), to read page by page (`ResultStream.hits`)."""
        snapshot = snapshot or self.snapshot()
        visual = self.require_index(snapshot.visual, "index")
        search = self._searcher_of(snapshot, metric)
        return ResultStream(
            lambda depth: tuple(row[0] for row in search(vector[None], depth)),
            visual,
            self.catalog,
            metric,
            visual.bits if metric == "hamming" else None,
            int(self.settings.dedup_fraction * visual.bits),
            self.settings.max_depth,
            first,
        )

    def _searcher_of(self, snapshot: Snapshot, metric: str) -> Callable[[np.ndarray, int], tuple]:
        """(raw vectors, depth) → (distances, keys): Hamming search of their codes, or exact L2/L1 search."""
        if metric not in METRICS:
            raise UnknownNameError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        visual = self.require_index(snapshot.visual, "index")
        if metric == "hamming":
            index, encode = visual.codes, visual.binarizer.transform
        else:
            index = self._raw_index(visual, metric, snapshot.generation)
            encode = functools.partial(unit_vectors, metric=metric)

        def search(vectors: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
            limit_threads(self.settings.search_threads)  # in whichever thread reads the page
            return index.search(encode(vectors), depth)

        return search

    def search_objects(self, query: Query, k: int = 10) -> list[SearchHit]:
        """Object search (section 8): the k scenes whose best-matching indexed object is nearest the query."""
        return self.search_objects_many([query], k)[0]

    def search_objects_many(
        self, queries: Sequence[Query], k: int = 10, snapshot: Snapshot | None = None
    ) -> list[list[SearchHit]]:
        """`search_objects` for a batch of queries: embedded in one batch, searched in one call (in `snapshot`,
        when a request must see one generation throughout)."""
        check_k(k, self.settings.max_depth)
        _check_queries(queries)
        if not queries:
            return []
        limit_threads(self.settings.search_threads)
        objects = self.require_index((snapshot or self.snapshot()).objects, "object index")
        codes = objects.binarizer.transform(self.embed(queries, ObjectRun.parse(objects.model).model))
        total, depth = len(objects.codes), min(len(objects.codes), 20 * k + 50)
        distances, ids = objects.codes.search(codes, depth)
        found = []
        for row, (row_distances, row_ids) in enumerate(zip(distances, ids, strict=True)):
            scenes, row_depth = self._scenes(objects, row_distances, row_ids, k), depth
            while len(scenes) < k and row_depth < total:  # a scene holds many regions (windows): read deeper
                row_depth = min(total, 4 * row_depth)
                deeper_distances, deeper_ids = objects.codes.search(codes[row : row + 1], row_depth)
                scenes = self._scenes(objects, deeper_distances[0], deeper_ids[0], k)
            found.append(scenes)
        return found

    def _scenes(self, objects: VisualIndex, distances: np.ndarray, ids: np.ndarray, k: int) -> list[SearchHit]:
        """The k scenes (pins) of the nearest objects, each at its best object's distance."""
        found = ids >= 0
        with self.catalog.snapshot():
            stored = {o.id: o for o in self.catalog.objects(objects.model, ids=ids[found].tolist())}
            scenes: dict[int, tuple[float, StoredObject]] = {}
            for distance, object_id in zip(distances[found].tolist(), ids[found].tolist(), strict=True):
                nearest = stored.get(object_id)  # nearest first; None when its pin was deleted since indexing
                if nearest is not None and nearest.key not in scenes:
                    scenes[nearest.key] = (distance, nearest)
            pins = self.catalog.by_keys(list(scenes))
        ranked = [(key, hit) for key, hit in scenes.items() if key in pins][:k]
        return [
            SearchHit(
                rank,
                pins[key],
                "object",
                "hamming",
                distance,
                objects.bits,
                similarity("hamming", distance, objects.bits),
                object=nearest,
            )
            for rank, (key, (distance, nearest)) in enumerate(ranked, start=1)
        ]

    def search_text(self, words: str, k: int = 10, offset: int = 0, any_word: bool = False) -> list[SearchHit]:
        """Keyword search over the pins' descriptions, boards and categories (BM25, SQLite FTS5). Every word
        is searched as a word, never as query syntax; all must match unless `any_word`. BM25 has no fixed
        scale: a hit's similarity is its score over the best one's (uncalibrated), its distance the score
        negated (nearer is smaller, as for every source)."""
        check_k(k, self.settings.max_depth)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise BadArgumentError(f"offset must be a whole number, at least 0, got {offset!r}")
        with self.catalog.snapshot():
            found = self.catalog.text_search(words, k, offset, any_word)
            top = found[:1] if offset == 0 else self.catalog.text_search(words, 1, 0, any_word)
            pins = self.catalog.by_keys([key for key, _ in found])
        found = [(key, score) for key, score in found if key in pins]
        similarities = relative_scores([score for _, score in found], best=top[0][1] if top else None)
        return [
            SearchHit(rank, pins[key], "text", "bm25", -score, None, similarity, calibrated=False)
            for rank, ((key, score), similarity) in enumerate(zip(found, similarities, strict=True), start=offset + 1)
        ]

    def pin(self, pin_id: str) -> Pin:
        return self.catalog.get(pin_id)

    # -- embedding ----------------------------------------------------------------------------------------

    def embed(self, queries: Sequence[Query], model: str) -> np.ndarray:
        """Raw feature vectors of queries in feature space `model`: stored vectors for uncropped catalog pins,
        the embedder (one batch) for everything else."""
        vectors: dict[int, np.ndarray] = {}
        for position, query in enumerate(queries):
            if isinstance(query, PinQuery) and query.crop is None:
                _, stored = self.catalog.features(model, [self.catalog.get(query.pin_id).key])
                if len(stored):
                    vectors[position] = stored[0]
        todo = [position for position in range(len(queries)) if position not in vectors]
        if todo:
            embedder = self.embedder(model)
            images = [self._image(queries[position], embedder.preprocess.resize) for position in todo]
            vectors.update(zip(todo, embedder.embed(images), strict=True))
        return np.stack([vectors[position] for position in range(len(queries))])

    def _image(self, query: Query, min_side: int) -> Image.Image:
        """The pixels a query shows the model: decoded as indexed images are, then cropped."""
        limit = self.settings.max_image_pixels
        if isinstance(query, PinQuery):
            pin = self.catalog.get(query.pin_id)
            data = pin.image_bytes(self.settings.fetch_timeout_s)
            return decode_for_model(data, f"pin {pin.pin_id}", min_side, limit, query.crop)
        if isinstance(query, BytesQuery):
            return decode_for_model(query.data, query.name, min_side, limit, query.crop)
        image = query.image.convert("RGB")
        return image if query.crop is None else image.crop(query.crop.check_inside(*image.size).pixels())

    def embedder(self, model: str) -> Embedder:
        """The embedder of feature space `model`, built once (one thread per call, as serving wants)."""
        return self._once(
            ("embedder", model), lambda: Embedder.load(model, self.settings, self.settings.search_threads)
        )

    def has_embedder(self, model: str) -> bool:
        """Whether the embedder of `model` is loaded already (readiness checks must not load it)."""
        return ("embedder", model) in self._built

    def detector(self) -> Detector:
        """The settings' detector, built once."""
        name = self.settings.detector
        return self._once(
            ("detector", name), lambda: create_detector(name, self.settings, self.settings.search_threads)
        )

    def _raw_index(self, visual: VisualIndex, metric: str, generation: Generation) -> RawVectors:
        """Exact L2/L1 search over the stored features of the pins `generation` indexes: a folder of unit
        vectors under HOME/index/raw, written once (by whichever process needs it first) and memory-mapped by
        every process, so none holds the catalog's floats. Older generations' folders go when it is ready."""
        folder = self.settings.index_dir / "raw"
        prefix = f"{re.sub(r'[^A-Za-z0-9_.-]', '-', visual.model)}-{metric}-"
        path = folder / f"{prefix}{generation.number}-{int(generation.published_at * 1e6)}"

        def build() -> RawVectors:
            try:
                return RawVectors.open(path, metric)
            except FileNotFoundError:
                pass
            except ValueError as exc:  # damaged: written again
                log.warning("raw vectors rebuilt: %s", exc)
                shutil.rmtree(path, ignore_errors=True)
            with self.catalog.snapshot():
                ids = np.intersect1d(self.catalog.feature_keys(visual.model), visual.codes.ids())

                def read(chunk: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
                    keys, vectors = self.catalog.features(visual.model, chunk)
                    return keys, unit_vectors(vectors, metric)

                raw = RawVectors.build(path, ids, read, metric)
            for stale in folder.glob(f"{prefix}*"):
                older = stale.name.removeprefix(prefix).split("-")[0]
                if older.isdigit() and int(older) < generation.number:  # a process on it keeps its mapping
                    shutil.rmtree(stale, ignore_errors=True)
            return raw

        key = ("raw", visual.model, metric, generation.number)
        index = self._once(key, build)
        for stale in [k for k in list(self._built) if k[0] == "raw" and k[1:3] == key[1:3] and k[3] < key[3]]:
            self._built.pop(stale, None)
            self._build_locks.pop(stale, None)
        return index

    def _once(self, key: tuple, build: Callable[[], T]) -> T:
        """`build()`'s result, built by one thread while others wanting the same key wait (only they)."""
        built = self._built.get(key)
        if built is None:
            with self._build_locks_lock:
                lock = self._build_locks.setdefault(key, threading.Lock())
            with lock:
                built = self._built.get(key)
                if built is None:
                    built = self._built[key] = build()
        return built

    # -- helpers ----------------------------------------------------------------------------------------

    def require_index(self, index: VisualIndex | None, what: str = "index") -> VisualIndex:
        """`index` (a snapshot's visual or object index), or a NotIndexedError that says what to run."""
        if index is None or not len(index.codes):
            command = "viscover objects" if what == "object index" else "viscover index"
            raise NotIndexedError(f"no {what} in this home yet: run `{command}` first")
        return index


def check_k(k: int, most: int) -> None:
    """A result count must be a whole number from 1 to the depth cap."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= most:
        raise BadArgumentError(f"k must be a whole number between 1 and {most}, got {k!r}")


def _check_queries(queries: Sequence[Query]) -> None:
    for query in queries:
        if not isinstance(query, PinQuery | BytesQuery | ImageQuery):
            raise BadArgumentError(f"cannot search by a {type(query).__name__}: use PinQuery, BytesQuery or ImageQuery")
