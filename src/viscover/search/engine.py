"""The engine: one object that ingests, indexes and searches a catalog stored under a home directory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

from viscover.config import Settings
from viscover.errors import BadImageError, NotIndexedError, UnknownPinError
from viscover.features import (
    Binarizer,
    Embedder,
    backbone_spec,
    create_backbone,
    embed_locations,
    hamming_distances,
)
from viscover.index import METRICS, VectorIndex, VisualIndex
from viscover.ingest import Catalog, CropBox, IngestReport, Pin, decode_image, ingest, load_image

Query = str | Path | bytes | Image.Image


@dataclass(frozen=True)
class SearchHit:
    """One result: the pin, its distance to the query, and near-duplicates folded into it."""

    rank: int
    pin: Pin
    distance: float
    near_duplicates: tuple[str, ...] = ()


@dataclass
class IndexReport:
    """What `Engine.index` did and how fast the CNN ran."""

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
    """Catalog + features + index under `settings.home`. Reopening re-extracts nothing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog(settings.catalog_path)
        self._embedders: dict[str, Embedder] = {}
        self._raw: dict[str, VectorIndex] = {}
        self._visual: VisualIndex | None = VisualIndex.load(self._visual_path)

    @classmethod
    def open(cls, home: Path | str | None = None, **overrides: object) -> Engine:
        """Open (or create) the catalog under `home`; `overrides` are Settings fields."""
        if home is not None:
            overrides["home"] = Path(home)
        return cls(Settings(**overrides))

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def feature_key(self) -> str:
        return f"{self.settings.backbone}/{self.settings.layer}"

    @property
    def visual_index(self) -> VisualIndex | None:
        """The binary index as last built, or None before the first `index()`."""
        return self._visual

    @property
    def _visual_path(self) -> Path:
        return self.settings.index_dir / "visual.npz"

    # -- build ------------------------------------------------------------------------------------------

    def ingest(self, path: Path | str, progress: bool = True) -> IngestReport:
        return ingest(self.catalog, Path(path), self.settings, progress)

    def index(self, progress: bool = True) -> IndexReport:
        """Extract features of pins that lack them, then bring the binary index up to date."""
        report = self.extract(self.settings.backbone, self.settings.layer, progress)
        self._raw.clear()  # raw L2/L1 indexes are rebuilt from the stored features on next use
        self._visual, report.rebuilt = self._updated_visual_index()
        if self._visual is not None:
            self._visual.save(self._visual_path)
            report.indexed, report.bits = len(self._visual.codes), self._visual.binarizer.bits
        return report

    def extract(self, backbone: str, layer: str, progress: bool = True) -> IndexReport:
        """Store `backbone/layer` features for every pin that lacks them (batch by batch: resumable)."""
        backbone_spec(backbone, self.settings)  # an unknown name is an error even with nothing to extract
        model, report = f"{backbone}/{layer}", IndexReport()
        todo = self.catalog.pins_without_features(model)
        if todo:
            embedder = self.embedder(backbone, layer)
            report.runtime = embedder.runtime
            start = time.perf_counter()
            items = [(pin.key, pin.location) for pin in todo]
            for batch in embed_locations(embedder, items, self.settings, progress):
                if batch.keys:
                    self.catalog.put_features(model, batch.keys, batch.vectors)
                report.extracted += len(batch.keys)
                report.failures.extend(batch.failures)
            report.seconds = time.perf_counter() - start
        return report

    def _updated_visual_index(self) -> tuple[VisualIndex | None, bool]:
        """Add new pins' codes and drop deleted ones; rebuild from all stored features only when needed."""
        settings, visual = self.settings, self._visual
        keys = self.catalog.feature_keys(self.feature_key)
        if not len(keys):
            return None, False
        rebuild = (
            visual is None
            or visual.model != self.feature_key
            or visual.codes.spec != settings.index
            or visual.binarizer.method != settings.binarizer
            or visual.requested_bits != settings.code_bits
            or len(keys) >= 2 * visual.fitted_on  # the catalog doubled: relearn thresholds
        )
        if not rebuild:
            indexed = faiss.vector_to_array(visual.codes.faiss_index.id_map)
            gone = np.setdiff1d(indexed, keys)
            rebuild = len(gone) > 0 and not visual.codes.remove(gone)  # this index type cannot delete
        if rebuild:
            keys, vectors = self.catalog.features(self.feature_key)
            binarizer = Binarizer.fit(settings.binarizer, vectors, settings.code_bits)
            codes = VectorIndex.create(settings.index, "hamming", binarizer.bits)
            codes.add(keys, binarizer(vectors))
            return VisualIndex(self.feature_key, binarizer, codes, len(keys), settings.code_bits), True
        new = np.setdiff1d(keys, indexed)
        if len(new):
            new_keys, new_vectors = self.catalog.features(self.feature_key, new.tolist())
            visual.codes.add(new_keys, visual.binarizer(new_vectors))
        return visual, False

    def delete(self, pin_ids: list[str]) -> int:
        """Remove pins from the catalog and every index; unknown ids raise before anything changes."""
        keys = self.catalog.delete(pin_ids)
        self._raw.clear()
        if self._visual is not None:
            self._visual, _ = self._updated_visual_index()
            if self._visual is None:
                self._visual_path.unlink(missing_ok=True)
            else:
                self._visual.save(self._visual_path)
        return len(keys)

    # -- search -----------------------------------------------------------------------------------------

    def search(
        self, query: Query, crop: CropBox | None = None, k: int = 10, metric: str = "hamming"
    ) -> list[SearchHit]:
        """Top-k pins for an image (path, URL, bytes, PIL image) or a pin id, optionally for a crop of it."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        visual = self._require_index()
        vector = self.embed_query(query, crop, visual.model)
        fetch = min(2 * k + 10, len(visual.codes))
        if metric == "hamming":
            distances, keys = visual.codes.search(visual.binarizer(vector[None]), fetch)
        else:
            distances, keys = self._raw_index(visual.model, metric).search(vector[None], fetch)
        return self._collapse(distances[0], keys[0], visual, k)

    def embed_query(self, query: Query, crop: CropBox | None = None, model: str | None = None) -> np.ndarray:
        """The raw feature vector of a query; a stored pin without a crop reuses its stored vector."""
        model = model or self.feature_key
        pin = self._as_pin(query)
        if pin is not None and crop is None:
            _, vectors = self.catalog.features(model, [pin.key])
            if len(vectors):
                return vectors[0]
        image = self._query_image(query if pin is None else pin.location)
        if crop is not None:
            image = crop.apply(image)
        backbone, layer = model.split("/", 1)
        return self.embedder(backbone, layer).embed([image])[0]

    def pin(self, pin_id: str) -> Pin:
        return self.catalog.get(pin_id)

    # -- helpers ----------------------------------------------------------------------------------------

    def _require_index(self) -> VisualIndex:
        if self._visual is None or not len(self._visual.codes):
            raise NotIndexedError(f"no index under {self.settings.home}: run `viscover index` first")
        return self._visual

    def embedder(self, backbone: str, layer: str) -> Embedder:
        """The (cached) embedder of one feature space."""
        key = f"{backbone}/{layer}"
        if key not in self._embedders:
            self._embedders[key] = Embedder(create_backbone(backbone, layer, self.settings), self.settings)
        return self._embedders[key]

    def _raw_index(self, model: str, metric: str) -> VectorIndex:
        """Exact L2/L1 search over the stored raw features, built in memory on first use."""
        cache_key = f"{model}:{metric}"
        if cache_key not in self._raw:
            keys, vectors = self.catalog.features(model)
            index = VectorIndex.create("Flat", metric, vectors.shape[1])
            index.add(keys, vectors)
            self._raw[cache_key] = index
        return self._raw[cache_key]

    def _as_pin(self, query: Query) -> Pin | None:
        """A string that is not a file or URL is taken as a pin id."""
        if not isinstance(query, str) or query.startswith(("http://", "https://")) or Path(query).exists():
            return None
        try:
            return self.catalog.get(query)
        except UnknownPinError:
            raise UnknownPinError(f"{query!r} is neither an image file nor a pin id in the catalog") from None

    def _query_image(self, query: Query) -> Image.Image:
        limit = self.settings.max_image_pixels
        if isinstance(query, Image.Image):
            return query.convert("RGB")
        if isinstance(query, bytes):
            return decode_image(query, "query image", limit).image
        if isinstance(query, (str, Path)):
            return load_image(str(query), limit, self.settings.fetch_timeout_s).image
        raise BadImageError(f"cannot search by a {type(query).__name__}")

    def _collapse(self, distances: np.ndarray, keys: np.ndarray, visual: VisualIndex, k: int) -> list[SearchHit]:
        """Fold results within `dedup_fraction` of the code bits of a better result into it (footnote 4)."""
        radius = int(self.settings.dedup_fraction * visual.binarizer.bits)
        found = keys >= 0
        distances, keys = distances[found], keys[found]
        pins = self.catalog.by_keys(keys.tolist())
        stored_keys, vectors = self.catalog.features(visual.model, keys.tolist())
        code_of = dict(zip(stored_keys.tolist(), visual.binarizer(vectors), strict=True))
        kept: list[tuple[int, float, list[str]]] = []
        for key, distance in zip(keys.tolist(), distances.tolist(), strict=True):
            if key not in pins:
                continue
            if kept:
                kept_codes = np.stack([code_of[kk] for kk, _, _ in kept])
                near = hamming_distances(code_of[key], kept_codes)
                closest = int(np.argmin(near))
                if near[closest] <= radius:
                    kept[closest][2].append(pins[key].pin_id)
                    continue
            kept.append((key, distance, []))
            if len(kept) == k:
                break
        return [
            SearchHit(rank, pins[key], distance, tuple(dups))
            for rank, (key, distance, dups) in enumerate(kept, start=1)
        ]
