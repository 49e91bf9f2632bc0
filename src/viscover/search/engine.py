"""The engine: the facade the command line and scripts use over a home. It is the write path (ingest, index,
delete; `objects.py` adds objects), each job holding the home's write lock, and it searches through a
`Searcher`, the read path that servers share between threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from viscover.config import Settings
from viscover.errors import NotEnoughDataError, PinConflictError
from viscover.features import Binarizer, EmbeddedBatch, Embedder, backbone_spec, embed_locations, model_key
from viscover.home import prepare_home
from viscover.index import IndexStore, VectorIndex, VisualIndex
from viscover.ingest import Catalog, IngestReport, Pin, decode_image, ingest
from viscover.ingest.catalog import Change
from viscover.ingest.images import SUPPORTED_FORMATS
from viscover.search.queries import Query
from viscover.search.results import SearchHit
from viscover.search.searcher import Searcher
from viscover.storage import atomic_path, write_lock
from viscover.threads import limit_threads

if TYPE_CHECKING:
    from viscover.search.objects import DetectedPin

log = logging.getLogger(__name__)


class BatchRunner(Protocol):
    """Where a batch job runs its models: in this process when none is given, or on a Ray cluster
    (`viscover.distributed.RayRunner`). The engine commits what a runner yields, as the home's one writer."""

    runtime: str

    def embed(self, model: str, pins: Sequence[Pin], progress: bool) -> Iterator[EmbeddedBatch]:
        """Features of feature space `model` for `pins`, batch by batch, with the pins that failed."""
        ...

    def detect(self, run: str, pins: Sequence[Pin], progress: bool) -> Iterator[DetectedPin]:
        """The objects of object run `run` in each of `pins`, pin by pin."""
        ...

    def published(self, name: str, index: VisualIndex) -> None:
        """Told by the writer once it published the index a job fed, as `name` (a Ray runner lands its codes)."""
        ...


@dataclass(frozen=True)
class AddedPin:
    """What `Engine.add` did: the pin as stored, whether it was new or updated, and whether it is searchable."""

    pin: Pin
    change: Change
    indexed: bool


@dataclass
class IndexReport:
    """What `Engine.index` did and how fast the CNN ran."""

    model: str = ""
    extracted: int = 0
    indexed: int = 0
    bits: int = 0
    rebuilt: bool = False
    runtime: str = "-"
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.extracted / self.seconds if self.seconds else 0.0


class Engine:
    """Catalog + features + indexes under `settings.home`. Reopening re-extracts nothing."""

    def __init__(self, settings: Settings) -> None:
        prepare_home(settings)
        self.settings = settings
        self.catalog = Catalog(settings.catalog_path)
        self.store = IndexStore(settings.index_dir)
        self._embedders: dict[str, Embedder] = {}
        self._searcher: Searcher | None = None
        self._searcher_lock = threading.Lock()

    @classmethod
    def open(cls, home: Path | str | None = None, **overrides: object) -> Engine:
        """Open (or create) the home `home`; `overrides` are Settings fields."""
        return cls(Settings.load(home, **overrides))

    def close(self) -> None:
        self.catalog.close()
        if self._searcher is not None:
            self._searcher.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the home's write lock, with batch jobs' thread counts, for one job."""
        with write_lock(self.settings.home, self.settings.write_lock_timeout_s):
            limit_threads(self.settings.threads)
            yield

    @property
    def feature_key(self) -> str:
        """The feature space the settings ask for (backbone, layer, weights digest)."""
        return model_key(self.settings.backbone, self.settings.layer, self.settings)

    def embedder(self, model: str) -> Embedder:
        """The batch embedder of one feature space (all batch threads), built once per engine."""
        if model not in self._embedders:
            self._embedders[model] = Embedder.load(model, self.settings, self.settings.threads)
        return self._embedders[model]

    # -- read path ---------------------------------------------------------------------------------------

    @property
    def searcher(self) -> Searcher:
        """The engine's read path, made on first use (one for all threads)."""
        with self._searcher_lock:
            if self._searcher is None:
                self._searcher = Searcher(self.settings)
            return self._searcher

    def search(self, query: Query, k: int = 10, metric: str = "hamming") -> list[SearchHit]:
        return self.searcher.search(query, k, metric)

    def search_many(self, queries: Sequence[Query], k: int = 10, metric: str = "hamming") -> list[list[SearchHit]]:
        return self.searcher.search_many(queries, k, metric)

    def search_objects(self, query: Query, k: int = 10) -> list[SearchHit]:
        return self.searcher.search_objects(query, k)

    @property
    def visual_index(self) -> VisualIndex | None:
        """The whole-image index as last published, or None before the first `index()`."""
        return self.searcher.snapshot().visual

    # -- write path --------------------------------------------------------------------------------------

    def ingest(self, path: Path | str, progress: bool = True) -> IngestReport:
        with self.writing():
            return ingest(self.catalog, Path(path), self.settings, progress)

    def build_dictionary(self, min_df: int) -> int:
        """Fix the terms annotations may use: those in at least `min_df` pins now (`viscover terms`)."""
        with self.writing():
            return self.catalog.build_dictionary(min_df)

    def index(self, progress: bool = True, runner: BatchRunner | None = None) -> IndexReport:
        """Extract features of pins that lack them (on `runner`, if given), then publish the binary index
        brought up to date."""
        with self.writing():
            report = self.extract(self.settings.backbone, self.settings.layer, progress, runner)
            visual, status = self._updated_visual_index(report.model, self.published_indexes().get("visual"))
            if status != "unchanged":
                generation = self.store.publish(visual=visual)
                if runner is not None and visual is not None:
                    runner.published(generation.name("visual"), visual)
            if visual is not None:
                report.indexed, report.bits, report.rebuilt = len(visual.codes), visual.bits, status == "rebuilt"
            return report

    def add(
        self,
        data: bytes,
        pin_id: str | None = None,
        description: str = "",
        boards: Sequence[str] = (),
        category: str | None = None,
    ) -> AddedPin:
        """Add one image given as bytes (an upload): stored under HOME/uploads by its content hash, never
        under a caller's name, then added to the catalog and indexed. A catalog too small to learn codes
        from keeps the pin until it is big enough."""
        with self.writing():
            decoded = decode_image(data, "upload", self.settings.max_image_pixels)
            path = self.settings.home / "uploads" / f"{decoded.sha256}{SUPPORTED_FORMATS[decoded.format]}"
            stored_before = path.exists()
            if not stored_before:
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
            pin = Pin(
                pin_id or decoded.sha256[:16],
                str(path),
                decoded.sha256,
                decoded.width,
                decoded.height,
                description,
                tuple(boards),
                category,
            )
            try:
                pin, change = self.catalog.add(pin)
            except PinConflictError:
                if not stored_before:
                    path.unlink(missing_ok=True)  # refused: leave no file behind
                raise
            try:
                self.index(progress=False)
            except NotEnoughDataError:
                return AddedPin(pin, change, indexed=False)
            return AddedPin(pin, change, indexed=True)

    def extract(
        self, backbone: str, layer: str, progress: bool = True, runner: BatchRunner | None = None
    ) -> IndexReport:
        """Store `backbone/layer` features for every pin that lacks them, computed here or on `runner`
        (batch by batch: resumable)."""
        with self.writing():
            backbone_spec(backbone, self.settings)  # an unknown name is an error even with nothing to extract
            report = IndexReport(model=model_key(backbone, layer, self.settings))
            todo = self.catalog.pins_without_features(report.model)
            if todo:
                start = time.perf_counter()
                if runner is None:
                    embedder = self.embedder(report.model)
                    items = [(pin.key, pin.location) for pin in todo]
                    batches = embed_locations(embedder, items, self.settings, progress)
                    report.runtime = embedder.runtime
                else:
                    batches, report.runtime = runner.embed(report.model, todo, progress), runner.runtime
                for batch in batches:
                    if batch.keys:
                        self.catalog.put_features(report.model, batch.keys, batch.vectors)
                    report.extracted += len(batch.keys)
                    report.failures.extend(batch.failures)
                report.seconds = time.perf_counter() - start
            return report

    def _updated_visual_index(self, model: str, visual: VisualIndex | None) -> tuple[VisualIndex | None, str]:
        """`visual` with new pins' codes added and deleted ones dropped ("updated", or "unchanged"), or an index
        rebuilt from every stored vector ("rebuilt") when the settings changed, the catalog doubled, or the
        index type cannot delete."""
        settings = self.settings
        keys = self.catalog.feature_keys(model)
        if not len(keys):
            return visual, "unchanged"
        if not (
            visual is None
            or visual.model != model
            or visual.codes.spec != settings.index
            or visual.binarizer.method != settings.binarizer
            or visual.binarizer.bits != settings.code_bits
            or len(keys) >= 2 * visual.fitted_on  # the catalog doubled: relearn thresholds
        ):
            indexed = visual.codes.ids()
            gone, new = np.setdiff1d(indexed, keys), np.setdiff1d(keys, indexed)
            if len(gone) == 0 or visual.codes.remove(gone):
                add_coded(visual.codes, visual.binarizer, new, self.vector_reader("visual", model))
                return visual, "updated" if len(gone) or len(new) else "unchanged"
        return coded_index(model, keys, self.vector_reader("visual", model), settings), "rebuilt"

    def delete(self, pin_ids: Sequence[str]) -> int:
        """Remove pins from the catalog and from the published indexes as they were built (whatever the
        settings say now); unknown ids raise before anything changes."""
        with self.writing():
            deleted = self.catalog.delete(pin_ids)
            published = self.published_indexes()
            changes: dict[str, VisualIndex | None] = {}
            for kind, ids in (("visual", deleted.keys), ("objects", deleted.object_ids)):
                index = published.get(kind)
                if index is None or not np.isin(ids, index.codes.ids()).any():
                    continue
                if not index.codes.remove(np.asarray(ids, dtype=np.int64)):
                    index = self._recoded(index, kind)
                changes[kind] = index if len(index.codes) else None
            if changes:
                self.store.publish(**changes)
            return len(deleted.keys)

    def published_indexes(self) -> dict[str, VisualIndex]:
        """The published indexes, for the writer to update; an unreadable generation counts as none, so the
        next `index` rebuilds from the catalog (which holds every vector) instead of failing for good."""
        try:
            return self.store.load()[1]
        except Exception as exc:
            log.warning("the published index files cannot be read (%s); they will be rebuilt", exc)
            return {}

    def vector_reader(self, kind: str, model: str) -> VectorReader:
        """Reads stored vectors by id: pins' features of feature space `model` ("visual"), or the objects of
        object run `model` ("objects")."""
        if kind == "visual":
            return lambda ids: self.catalog.features(model, ids)
        return lambda ids: self.catalog.object_vectors(model, ids)

    def _recoded(self, index: VisualIndex, kind: str) -> VisualIndex:
        """The index rebuilt from the catalog with its own binarizer (for index types that cannot delete)."""
        ids = self.catalog.feature_keys(index.model) if kind == "visual" else self.catalog.object_ids(index.model)
        codes = VectorIndex.create(index.codes.spec, "hamming", index.bits)
        add_coded(codes, index.binarizer, ids, self.vector_reader(kind, index.model))
        return VisualIndex(index.model, index.binarizer, codes, index.fitted_on)


VectorReader = Callable[[Sequence[int] | np.ndarray], tuple[np.ndarray, np.ndarray]]  # ids → (ids found, their vectors)
CODING_CHUNK = 16_384  # vectors read and coded at a time: an index build never holds every float of a catalog
CODES_PER_LIST = 50  # an IVF index learns its lists from this many codes a list (benchmarks/approximate_recall.py)


def coded_index(model: str, ids: np.ndarray, read: VectorReader, settings: Settings) -> VisualIndex:
    """A new binary index of the stored vectors `ids`: the settings' binarizer learnt from a seeded sample of at
    most `binarizer_sample` of them (ITQ's fit time grows fast with the sample), an IVF index's lists from a
    seeded sample of `CODES_PER_LIST` codes a list, then every vector read and coded chunk by chunk."""
    _, sample_vectors = read(_seeded_sample(ids, settings.binarizer_sample))
    binarizer = Binarizer(settings.binarizer, settings.code_bits).fit(sample_vectors)
    codes = VectorIndex.create(settings.index, "hamming", binarizer.code_bits_)
    if CODES_PER_LIST * codes.lists > len(sample_vectors):
        training = _seeded_sample(ids, CODES_PER_LIST * codes.lists)
        chunks = [read(training[i : i + CODING_CHUNK])[1] for i in range(0, len(training), CODING_CHUNK)]
        codes.train(np.concatenate([binarizer.transform(chunk) for chunk in chunks]))
    else:
        codes.train(binarizer.transform(sample_vectors))
    add_coded(codes, binarizer, ids, read)
    return VisualIndex(model, binarizer, codes, len(ids))


def _seeded_sample(ids: np.ndarray, size: int) -> np.ndarray:
    """At most `size` of `ids`, in their order, the same ones for the same ids."""
    if len(ids) <= size:
        return ids
    return ids[np.sort(np.random.default_rng(0).choice(len(ids), size, replace=False))]


def add_coded(codes: VectorIndex, binarizer: Binarizer, ids: np.ndarray, read: VectorReader) -> None:
    """Add the codes of the stored vectors `ids` to `codes`, `CODING_CHUNK` at a time."""
    for start in range(0, len(ids), CODING_CHUNK):
        found, vectors = read(ids[start : start + CODING_CHUNK].tolist())
        codes.add(found, binarizer.transform(vectors))
