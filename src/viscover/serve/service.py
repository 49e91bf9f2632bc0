"""What every request of a server shares: the read path (one `Searcher`), the home's single writer (an
`Engine`, for uploads and deletes), and the query vectors and result streams that pages come back for."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from PIL import Image

from viscover.box import Box
from viscover.config import Settings
from viscover.errors import BadArgumentError, BadSettingError, ExpiredCursorError, ViscoverError
from viscover.flashlight import Flashlight
from viscover.ingest import Pin, decode_for_model
from viscover.lens import Lens, LensResult
from viscover.related import LiveRelated
from viscover.search import Annotation, BytesQuery, Dot, Engine, PinQuery, Query, Searcher, SearchHit, Snapshot
from viscover.search.searcher import Placement
from viscover.search.stream import ResultStream
from viscover.storage import atomic_path

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 320
K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self._size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return value


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the query's digest and metric, and the last result shown (distance, pin key and
    id). A query on a catalog pin also carries the pin and crop, so its vector can be made again when the
    server no longer holds it. Signed by the server, so a client can neither forge nor edit one."""

    digest: str
    metric: str
    distance: float
    key: int
    pin_id: str
    query_pin: str | None = None
    query_crop: tuple[float, float, float, float] | None = None
    term: str | None = None  # the annotation the results are narrowed to

    def encode(self, secret: bytes) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(dataclasses.astuple(self)).encode()).decode().rstrip("=")
        return f"{payload}.{_signature(secret, payload)}"

    @classmethod
    def decode(cls, text: str, secret: bytes) -> Cursor:
        payload, _, signature = text.rpartition(".")
        try:
            fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
            raise BadArgumentError("cursor: not a cursor this server gave out") from None
        if not hmac.compare_digest(signature, _signature(secret, payload)):
            raise ExpiredCursorError("cursor: not from this server's run (it may have restarted): search again")
        cursor = cls(*fields)
        return dataclasses.replace(cursor, query_crop=tuple(cursor.query_crop) if cursor.query_crop else None)

    @property
    def query(self) -> PinQuery | None:
        """The catalog-pin query it continues, if it continues one (uploads are not kept in cursors)."""
        if self.query_pin is None:
            return None
        return PinQuery(self.query_pin, Box(*self.query_crop) if self.query_crop else None)


def _signature(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Page:
    hits: list[SearchHit]
    next_cursor: str | None
    digest: str
    generation: int
    annotations: list[Annotation] | None  # on a query's first page


class Service:
    """The server's shared state; every method is safe to call from many request threads at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Queries are uploads: decoding one may not take more pixels than an upload may have.
        limit = min(settings.max_image_pixels, settings.max_upload_pixels)
        self.searcher = Searcher(settings.model_copy(update={"max_image_pixels": limit}), cluster_placement(settings))
        self.flashlight = Flashlight(self.searcher)
        self.related = LiveRelated(self.searcher)
        self.lens = Lens(self.searcher)
        # Uploads and deletes are written beside searches: give them the serving path's thread count.
        self.writer = Engine(settings.model_copy(update={"batch_threads": settings.search_threads}))
        self.images = threading.BoundedSemaphore(settings.image_workers)  # decodes + embeddings at once
        self.secret = secrets.token_bytes(32)  # signs cursors; a new run makes old cursors expire
        self._vectors: LRU[tuple[str, str], np.ndarray] = LRU(settings.query_cache_size)
        self._streams: LRU[tuple[str, str, str], ResultStream] = LRU(settings.query_cache_size)
        self._streams_generation = -1
        self._streams_lock = threading.Lock()
        self.warm_up_error: str | None = None

    def close(self) -> None:
        self.searcher.close()
        self.writer.close()

    def warm_up(self) -> None:
        """Load the embedder of the published index, so the first search does not pay for it."""
        visual = self.searcher.snapshot().visual
        if visual is None:
            return
        try:
            self.searcher.embedder(visual.model)
        except ViscoverError as exc:
            self.warm_up_error = str(exc)
            log.error("cannot load the embedder of %s: %s", visual.model, exc)

    # -- paged search ------------------------------------------------------------------------------------

    def search(
        self, query: Query | None, k: int, metric: str, cursor: Cursor | None = None, term: str | None = None
    ) -> Page:
        """A page of results for a query, or for the query a cursor continues (then `query` may be None, and
        the cursor's metric and term rule), narrowed to pins carrying `term` when one is given. A first page
        also has the annotations of the (unnarrowed) results."""
        snapshot = self.searcher.snapshot()
        visual = self.searcher.require_index(snapshot.visual)
        if cursor is not None:
            digest, metric, query, term = cursor.digest, cursor.metric, cursor.query, cursor.term
        else:
            digest = query_digest(query)
        vector = self._vectors.get((digest, visual.model))
        if vector is None:
            if query is None:
                raise ExpiredCursorError(
                    "cursor: this server no longer holds that query (restarted, or many queries since); search again"
                )
            with self.images:
                vector = self.searcher.embed([query], visual.model)[0]
            self._vectors.put((digest, visual.model), vector)
        stream = self._stream(snapshot, digest, visual.model, metric, vector)
        start = stream.position_after(cursor.distance, cursor.key) if cursor else 0
        # one more than asked, to know whether another page follows
        hits = self.flashlight.narrowed(stream, term, start, k + 1) if term else stream.hits(start, k + 1)
        annotations = None
        if cursor is None:
            annotations = self.flashlight.annotations_for(query, stream.hits(0, self.settings.annotation_depth + 1))
        next_cursor = None
        if len(hits) > k:
            hits, last = hits[:k], hits[k - 1]
            pin_query = query if isinstance(query, PinQuery) else None
            next_cursor = Cursor(
                digest,
                metric,
                last.distance,
                last.key,
                last.pin_id,
                pin_query.pin_id if pin_query else None,
                tuple(pin_query.crop) if pin_query and pin_query.crop else None,
                term,
            ).encode(self.secret)
        return Page(hits, next_cursor, digest, snapshot.generation.number, annotations)

    def dots(self, query: Query) -> list[Dot]:
        """Flashlight's dots, counted among the decodes and embeddings the server runs at once."""
        with self.images:
            return self.flashlight.dots(query)

    def look(self, query: Query, k: int, term: str | None) -> LensResult:
        """Lens's understanding and blended feed, counted among the decodes and embeddings run at once."""
        with self.images:
            return self.lens.look(query, k, term)

    def scenes(self, query: Query, k: int) -> list[SearchHit]:
        """Object search: the scenes holding objects like the query (or its crop)."""
        with self.images:
            return self.searcher.search_objects(query, k)

    def _stream(self, snapshot: Snapshot, digest: str, model: str, metric: str, vector: np.ndarray) -> ResultStream:
        """The query's result stream in this generation; streams of older generations are let go (each holds
        its generation's index)."""
        with self._streams_lock:
            if self._streams_generation != snapshot.generation.number:
                self._streams = LRU(self.settings.query_cache_size)
                self._streams_generation = snapshot.generation.number
            streams = self._streams
        key = (digest, model, metric)
        return streams.get(key) or streams.put(key, self.searcher.stream(vector, metric, snapshot))

    # -- images ------------------------------------------------------------------------------------------

    def image(self, pin: Pin) -> tuple[bytes, str]:
        """A pin's image bytes as stored, and their media type."""
        data = pin.image_bytes(self.settings.fetch_timeout_s)
        with Image.open(io.BytesIO(data)) as image:
            return data, Image.MIME.get(image.format or "", "application/octet-stream")

    def thumbnail(self, pin: Pin) -> bytes:
        """A JPEG of at most THUMBNAIL_SIDE pixels a side, made once and kept under the cache directory."""
        path = self.settings.model_cache / "thumbnails" / f"{pin.sha256}.jpg"
        if not path.exists():
            data = pin.image_bytes(self.settings.fetch_timeout_s)
            with self.images:
                image = decode_for_model(data, f"pin {pin.pin_id}", THUMBNAIL_SIDE, self.settings.max_image_pixels)
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            with atomic_path(path) as tmp:
                image.save(tmp, "JPEG", quality=82)
        return path.read_bytes()


def cluster_placement(settings: Settings) -> Placement | None:
    """Where the server searches its indexes: in this process, or on Ray actors holding shards of them."""
    if settings.cluster is None:
        return None
    try:
        from viscover.distributed import ClusterPlacement
    except ImportError as exc:
        raise BadSettingError(
            f"cluster: serving from Ray needs the cluster extra ({exc}): pip install 'viscover[cluster]'"
        ) from None
    return ClusterPlacement(settings.home, settings.index_dir / "shards", settings.cluster_shards, settings.cluster)


def query_digest(query: Query) -> str:
    """Names a query by what it shows: the image bytes or the pin, and the crop."""
    digest = hashlib.sha256()
    if isinstance(query, BytesQuery):
        digest.update(b"bytes:" + hashlib.sha256(query.data).digest())
    elif isinstance(query, PinQuery):
        digest.update(b"pin:" + query.pin_id.encode())
    digest.update(b"|crop:" + repr(tuple(query.crop) if query.crop else None).encode())
    return digest.hexdigest()[:32]
