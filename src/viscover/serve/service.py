"""What every request of a server shares: the read path (one `Searcher`), the home's single writer (an
`Engine`, for uploads and deletes), and the query vectors and result streams that pages come back for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from PIL import Image

from viscover.box import Box
from viscover.config import Settings
from viscover.errors import BadArgumentError, ExpiredCursorError, ViscoverError
from viscover.ingest import Pin, decode_for_model, read_bytes
from viscover.search import BytesQuery, Engine, PinQuery, Query, Searcher, SearchHit
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
    """Where a page ended: the query's digest and the last result's (distance, pin id). A query on a catalog
    pin also carries the pin and crop, so its vector can be made again when the server no longer holds it."""

    digest: str
    metric: str
    distance: float
    pin_id: str
    query_pin: str | None = None
    query_crop: str | None = None

    def encode(self) -> str:
        fields = [self.digest, self.metric, self.distance, self.pin_id, self.query_pin, self.query_crop]
        return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            fields = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(*fields)
            if not all(isinstance(v, str) for v in (cursor.digest, cursor.metric, cursor.pin_id)):
                raise TypeError(fields)
            float(cursor.distance)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError):
            raise BadArgumentError("cursor: not a cursor this server gave out") from None
        return cursor


@dataclass(frozen=True)
class Page:
    hits: list[SearchHit]
    next_cursor: str | None
    digest: str
    generation: int


class Service:
    """The server's shared state; every method is safe to call from many request threads at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.searcher = Searcher(settings)
        # Uploads and deletes are written beside searches: give them the serving path's thread count.
        self.writer = Engine(settings.model_copy(update={"batch_threads": settings.search_threads}))
        self._vectors: LRU[tuple[str, str], np.ndarray] = LRU(settings.query_cache_size)
        self._streams: LRU[tuple[str, str, str, int], ResultStream] = LRU(settings.query_cache_size)
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

    def search(self, query: Query | None, k: int, metric: str, cursor: Cursor | None = None) -> Page:
        """A page of results for a query, or for the query a cursor continues (then `query` may be None)."""
        snapshot = self.searcher.snapshot()
        visual = self.searcher.require_index(snapshot.visual)
        if cursor is not None:
            digest = cursor.digest
            if cursor.query_pin is not None:  # a catalog pin's query can always be made again
                query = PinQuery(cursor.query_pin, parse_crop(cursor.query_crop))
        else:
            digest = query_digest(query)
        vector = self._vectors.get((digest, visual.model))
        if vector is None:
            if query is None:
                raise ExpiredCursorError(
                    "cursor: this server no longer holds that query (restarted, or many queries since); search again"
                )
            vector = self._vectors.put((digest, visual.model), self.searcher.embed([query], visual.model)[0])
        key = (digest, visual.model, metric, snapshot.generation.number)
        stream = self._streams.get(key) or self._streams.put(key, self.searcher.stream(vector, metric, snapshot))
        start = stream.position_after(cursor.distance, cursor.pin_id) if cursor else 0
        hits = stream.hits(start, k + 1)  # one more, to know whether another page follows
        next_cursor = None
        if len(hits) > k:
            hits, last = hits[:k], hits[k - 1]
            query_pin = query.pin_id if isinstance(query, PinQuery) else None
            query_crop = str(query.crop) if isinstance(query, PinQuery) and query.crop else None
            next_cursor = Cursor(digest, metric, last.distance, last.pin_id, query_pin, query_crop).encode()
        return Page(hits, next_cursor, digest, snapshot.generation.number)

    # -- images ------------------------------------------------------------------------------------------

    def image(self, pin: Pin) -> tuple[bytes, str]:
        """A pin's image bytes as stored, and their media type."""
        data = read_bytes(pin.location, self.settings.fetch_timeout_s)
        with Image.open(io.BytesIO(data)) as image:
            return data, Image.MIME.get(image.format or "", "application/octet-stream")

    def thumbnail(self, pin: Pin) -> bytes:
        """A JPEG of at most THUMBNAIL_SIDE pixels a side, made once and kept under the cache directory."""
        path = self.settings.model_cache / "thumbnails" / f"{pin.sha256}.jpg"
        if not path.exists():
            data = read_bytes(pin.location, self.settings.fetch_timeout_s)
            image = decode_for_model(data, f"pin {pin.pin_id}", THUMBNAIL_SIDE, self.settings.max_image_pixels)
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            with atomic_path(path) as tmp:
                image.save(tmp, "JPEG", quality=82)
        return path.read_bytes()


def query_digest(query: Query) -> str:
    """Names a query by what it shows: the image bytes or the pin, and the crop."""
    digest = hashlib.sha256()
    if isinstance(query, BytesQuery):
        digest.update(b"bytes:" + hashlib.sha256(query.data).digest())
    elif isinstance(query, PinQuery):
        digest.update(b"pin:" + query.pin_id.encode())
    digest.update(b"|crop:" + str(query.crop).encode())
    return digest.hexdigest()[:32]


def parse_crop(text: str | None) -> Box | None:
    return Box.parse(text) if text else None
