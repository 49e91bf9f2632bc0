"""The catalog: pins, their boards, features and objects in one embedded SQLite database (WAL mode).

Both share the read queries (`CatalogView`). `CatalogReader` is the read path: any number of threads, each on
its own read-only connection, never blocked by a writer. `Catalog` is the write path, used under the home's
write lock; every write is one transaction, so an interrupted ingest or extraction leaves only whole rows
behind.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from viscover.box import Box
from viscover.errors import BadImageError, NotIndexedError, PinConflictError, StoredImageError, UnknownPinError
from viscover.ingest.images import read_bytes
from viscover.ingest.schema import (
    LATEST,
    ModelKeyUpgrade,
    migrate,
    require_fts5,
    schema_version,
    store_pin_terms,
)
from viscover.ingest.text import fts_query

BUSY_TIMEOUT_MS = 10_000
IN_CHUNK = 900  # values per `IN (...)` list: under every SQLite build's limit on bound parameters

Change = Literal["added", "updated", "unchanged"]

TEXT_COLUMNS = ("description", "boards", "category")  # of the full-text index, pin_text


@dataclass(frozen=True)
class Pin:
    """One catalog image and the metadata users gave it (the paper's section 2)."""

    pin_id: str
    location: str
    sha256: str
    width: int
    height: int
    description: str = ""
    boards: tuple[str, ...] = ()
    category: str | None = None
    key: int = field(default=-1, compare=False)

    def image_bytes(self, timeout_s: float = 20.0) -> bytes:
        """The pin's image as stored (a file, or the URL its manifest gave)."""
        try:
            return read_bytes(self.location, timeout_s)
        except BadImageError as exc:
            raise StoredImageError(f"the image of pin {self.pin_id} cannot be read: {exc}") from exc


@dataclass(frozen=True)
class StoredObject:
    """A detected object of a pin, as stored: box in the pin's pixels, label, score, dominance."""

    id: int
    key: int
    box: Box
    label: str
    score: float
    dominant: bool


@dataclass(frozen=True)
class ObjectRun:
    """What produced stored objects: detector, score threshold, feature space (a model key), the context added
    around each box before embedding, and whether sliding windows were stored beside the boxes. Stored as the
    text `detector@threshold|model|context=c`, with `|windows` after it when they were."""

    detector: str
    min_score: float
    model: str
    context: float
    windows: bool = False

    def __str__(self) -> str:
        text = f"{self.detector}@{self.min_score:g}|{self.model}|context={self.context:g}"
        return text + "|windows" if self.windows else text

    @classmethod
    def parse(cls, text: str) -> ObjectRun:
        detector_at_score, model, context, *rest = text.split("|")
        if rest not in ([], ["windows"]):
            raise ValueError(f"not an object run this viscover knows: {text!r}")
        detector, _, score = detector_at_score.rpartition("@")
        return cls(detector, float(score), model, float(context.removeprefix("context=")), rest == ["windows"])


@dataclass(frozen=True)
class DeletedPins:
    """What a delete removed: the pin keys and object ids that must leave the indexes."""

    keys: list[int]
    object_ids: list[int]


def _chunks(values: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), IN_CHUNK):
        yield [int(v) for v in values[start : start + IN_CHUNK]]


def _marks(values: Sequence[int]) -> str:
    return ",".join("?" * len(values))


class CatalogView:
    """The catalog's read queries, over whatever connection `_db` gives (see the two classes below)."""

    path: Path

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> CatalogView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state of the catalog, whatever a writer commits meanwhile
        (re-entrant: an inner snapshot reads in the outer one)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    # -- pins ---------------------------------------------------------------------------------------

    def get(self, pin_id: str) -> Pin:
        pin = self._one("SELECT * FROM pin_rows WHERE pin_id = ?", (pin_id,))
        if pin is None:
            raise UnknownPinError(f"no pin with id {pin_id!r} in the catalog")
        return pin

    def by_keys(self, keys: Sequence[int]) -> dict[int, Pin]:
        """Pins for index keys; keys of deleted pins are absent."""
        pins: dict[int, Pin] = {}
        for chunk in _chunks(keys):
            rows = self._db.execute(f"SELECT * FROM pin_rows WHERE key IN ({_marks(chunk)})", chunk)
            pins.update((pin.key, pin) for pin in map(_pin_from_row, rows))
        return pins

    def pins_after(self, key: int, limit: int) -> list[Pin]:
        """Up to `limit` pins with keys above `key`, in key order (a page of the catalog)."""
        rows = self._db.execute("SELECT * FROM pin_rows WHERE key > ? ORDER BY key LIMIT ?", (key, limit))
        return list(map(_pin_from_row, rows))

    def locations(self) -> dict[str, int]:
        """Every stored location and its pin key."""
        return dict(self._db.execute("SELECT location, key FROM pins"))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM pins").fetchone()[0]

    def __iter__(self) -> Iterator[Pin]:
        return map(_pin_from_row, self._db.execute("SELECT * FROM pin_rows ORDER BY key"))

    def categories(self) -> dict[int, str | None]:
        return dict(self._db.execute("SELECT key, category FROM pins ORDER BY key").fetchall())

    # -- boards --------------------------------------------------------------------------------------

    def board_saves(self, after: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(save numbers, pin keys, board ids) of the saves of pins to boards made after save number `after`,
        in save order: Related Pins' graph reads only what is new."""
        rows = self._db.execute("SELECT rowid, key, board FROM pin_boards WHERE rowid > ? ORDER BY rowid", (after,))
        saves = np.array(rows.fetchall(), dtype=np.int64).reshape(-1, 3)
        return saves[:, 0], saves[:, 1], saves[:, 2]

    def board_saves_digest(self) -> tuple[int, int]:
        """(how many saves, the sum of `save_checksum` over them), kept by triggers: tells a reader's copy of the
        saves whether some went."""
        return self._db.execute("SELECT saves, checksum FROM board_save_digest").fetchone()

    @staticmethod
    def save_checksum(pins: np.ndarray, boards: np.ndarray) -> int:
        """The sum of one number per save (pin key, board id), as the catalog's triggers add them up."""
        return int(((pins.astype(np.int64) * 1000003 + boards) % 1000000007).sum()) if len(pins) else 0

    def board_ids(self) -> dict[str, int]:
        """Every board's id by name."""
        return dict(self._db.execute("SELECT name, id FROM boards"))

    # -- text ----------------------------------------------------------------------------------------

    def term_counts(self, keys: Sequence[int], min_df: int) -> dict[int, dict[str, tuple[int, int]]]:
        """Per pin, its terms that annotations may use, as term → (count in the pin, document frequency):
        the dictionary's terms once `viscover terms` has built it, else every term in at least `min_df` pins."""
        built = self._db.execute("SELECT 1 FROM dictionary_state").fetchone() is not None
        usable = "t.id IN (SELECT term FROM dictionary)" if built else "t.df >= ?"
        counts: dict[int, dict[str, tuple[int, int]]] = {}
        for chunk in _chunks(keys):
            args = [*chunk] if built else [*chunk, min_df]
            rows = self._db.execute(
                "SELECT pt.key, t.term, pt.count, t.df FROM pin_terms pt JOIN terms t ON t.id = pt.term "
                f"WHERE pt.key IN ({_marks(chunk)}) AND {usable}",
                args,
            )
            for key, term, count, df in rows:
                counts.setdefault(key, {})[term] = (count, df)
        return counts

    def frequent_terms(self, limit: int) -> list[tuple[str, int]]:
        """The `limit` terms in the most pins, with how many (a baseline that annotations must beat)."""
        rows = self._db.execute("SELECT term, df FROM terms WHERE df > 0 ORDER BY df DESC, term LIMIT ?", (limit,))
        return [(term, df) for term, df in rows]

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many pins hold each of these terms (terms no pin holds are left out)."""
        rows = self._db.execute(
            "SELECT term, df FROM terms WHERE df > 0 AND term IN (SELECT value FROM json_each(?))", [json.dumps(terms)]
        )
        return dict(rows.fetchall())

    def keys_with_term(self, term: str, keys: Sequence[int]) -> set[int]:
        """Which of `keys` are pins whose text holds `term`."""
        found: set[int] = set()
        for chunk in _chunks(keys):
            rows = self._db.execute(
                "SELECT pt.key FROM pin_terms pt JOIN terms t ON t.id = pt.term "
                f"WHERE t.term = ? AND pt.key IN ({_marks(chunk)})",
                [term, *chunk],
            )
            found.update(row[0] for row in rows)
        return found

    def text_search(
        self, text: str, limit: int, offset: int = 0, any_word: bool = False, column: str | None = None
    ) -> list[tuple[int, float]]:
        """(pin key, BM25 score, higher is better) of the pins whose text (or only its `column`: description,
        boards or category) matches the words, best first."""
        query = fts_query(text, any_word)
        if not query:
            return []
        if column is not None:
            if column not in TEXT_COLUMNS:
                raise ValueError(f"unknown text column {column!r}; choose one of {', '.join(TEXT_COLUMNS)}")
            query = f"{column} : ({query})"
        rows = self._db.execute(
            "SELECT rowid, -bm25(pin_text) AS score FROM pin_text WHERE pin_text MATCH ? "
            "ORDER BY score DESC, rowid LIMIT ? OFFSET ?",
            (query, limit, offset),
        )
        return [(key, float(score)) for key, score in rows]

    # -- features ------------------------------------------------------------------------------------

    def pins_without_features(self, model: str) -> list[Pin]:
        rows = self._db.execute(
            "SELECT * FROM pin_rows WHERE key NOT IN (SELECT key FROM features WHERE model = ?) ORDER BY key",
            (model,),
        )
        return list(map(_pin_from_row, rows))

    def feature_keys(self, model: str) -> np.ndarray:
        """Keys of the pins that have a stored vector for `model` (cheap: no vectors are read)."""
        rows = self._db.execute("SELECT key FROM features WHERE model = ? ORDER BY key", (model,)).fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def features(self, model: str, keys: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(keys, float32 matrix) of stored vectors in key order, filled row by row into one preallocated array."""
        if keys is None:
            count = self._db.execute("SELECT COUNT(*) FROM features WHERE model = ?", (model,)).fetchone()[0]
            queries = [("SELECT key, vector FROM features WHERE model = ? ORDER BY key", [model])]
        else:
            ordered = sorted({int(k) for k in keys})
            count = len(ordered)
            queries = [
                (f"SELECT key, vector FROM features WHERE model = ? AND key IN ({_marks(c)}) ORDER BY key", [model, *c])
                for c in _chunks(ordered)
            ]
        out_keys = np.empty(count, dtype=np.int64)
        out: np.ndarray | None = None
        n = 0
        for query, args in queries:
            for key, blob in self._db.execute(query, args):
                vector = np.frombuffer(blob, dtype="<f4")
                if out is None:
                    out = np.empty((count, vector.size), dtype=np.float32)
                out_keys[n], out[n] = key, vector
                n += 1
        if out is None:
            return out_keys[:0], np.empty((0, 0), dtype=np.float32)
        return out_keys[:n], out[:n]

    # -- objects -------------------------------------------------------------------------------------

    def pins_without_objects(self, run: str) -> list[Pin]:
        rows = self._db.execute(
            "SELECT * FROM pin_rows WHERE key NOT IN (SELECT key FROM detected WHERE run = ?) ORDER BY key", (run,)
        )
        return list(map(_pin_from_row, rows))

    def objects(self, run: str, ids: Sequence[int] | None = None, key: int | None = None) -> list[StoredObject]:
        """Stored objects of a run: all, those with the given ids, or those of one pin."""
        base = "SELECT id, key, x0, y0, x1, y1, label, score, dominant FROM objects WHERE run = ?"
        if key is not None:
            queries = [(base + " AND key = ? ORDER BY id", [run, key])]
        elif ids is not None:
            # `+run` keeps SQLite on the primary key: through the run's index it would scan every object of the run
            by_id = base.replace("WHERE run = ?", "WHERE +run = ?")
            queries = [(by_id + f" AND id IN ({_marks(c)}) ORDER BY id", [run, *c]) for c in _chunks(sorted(ids))]
        else:
            queries = [(base + " ORDER BY id", [run])]
        return [
            StoredObject(r[0], r[1], Box(*r[2:6]), r[6], r[7], bool(r[8]))
            for query, args in queries
            for r in self._db.execute(query, args)
        ]

    def was_detected(self, run: str, key: int) -> bool:
        """Whether `run` has looked at the pin (it may have found nothing)."""
        return self._db.execute("SELECT 1 FROM detected WHERE run = ? AND key = ?", (run, key)).fetchone() is not None

    def object_labels(self, run: str, keys: Sequence[int]) -> dict[int, set[str]]:
        """The labels of each pin's stored objects, for the pins among `keys` that `run` has looked at (one
        where it found nothing has none)."""
        found: dict[int, set[str]] = {}
        for chunk in _chunks(sorted({int(k) for k in keys})):
            rows = self._db.execute(
                "SELECT d.key, o.label FROM detected d LEFT JOIN objects o ON o.run = d.run AND o.key = d.key "
                f"WHERE d.run = ? AND d.key IN ({_marks(chunk)})",
                [run, *chunk],
            )
            for key, label in rows:
                found.setdefault(key, set()).update([label] if label is not None else [])
        return found

    def object_ids(self, run: str) -> np.ndarray:
        """Ids of every object of a run, in order (cheap: no vectors are read)."""
        rows = self._db.execute("SELECT id FROM objects WHERE run = ? ORDER BY id", (run,)).fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def object_vectors(self, run: str, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(object ids, float32 matrix) of the objects of a run with the given ids (default: all), in id order."""
        if ids is None:
            queries = [("SELECT id, vector FROM objects WHERE run = ? ORDER BY id", [run])]
        else:
            queries = [
                (f"SELECT id, vector FROM objects WHERE run = ? AND id IN ({_marks(c)}) ORDER BY id", [run, *c])
                for c in _chunks(sorted({int(i) for i in ids}))
            ]
        rows = [row for query, args in queries for row in self._db.execute(query, args)]
        if not rows:
            return np.zeros(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        found = np.array([r[0] for r in rows], dtype=np.int64)
        return found, np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])

    def dominant_object(self, run: str, key: int) -> tuple[StoredObject, np.ndarray] | None:
        """A pin's dominant object under a run, with its vector, if it has one."""
        row = self._db.execute(
            "SELECT id, key, x0, y0, x1, y1, label, score, dominant, vector FROM objects "
            "WHERE run = ? AND key = ? AND dominant = 1 ORDER BY id LIMIT 1",
            (run, key),
        ).fetchone()
        if row is None:
            return None
        return StoredObject(row[0], row[1], Box(*row[2:6]), row[6], row[7], True), np.frombuffer(row[9], dtype="<f4")

    def dominance_rule(self, run: str) -> tuple[float, float] | None:
        """(dominant_area, dominant_score) that the run's `dominant` flags follow, or None for a new run."""
        row = self._db.execute("SELECT dominant_area, dominant_score FROM object_runs WHERE run = ?", (run,))
        return row.fetchone()

    # -- helpers ---------------------------------------------------------------------------------------

    def _one(self, query: str, args: tuple) -> Pin | None:
        row = self._db.execute(query, args).fetchone()
        return None if row is None else _pin_from_row(row)


class _ThreadConnection:
    """One thread's read-only connection. Only the thread's slot holds it (the reader keeps a weak
    reference), so it closes when the thread ends, or once the last cursor on it is done."""

    def __init__(self, path: Path) -> None:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        self.connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self.connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        require_fts5(self.connection)


class CatalogReader(CatalogView):
    """Read-only access to a catalog, safe to share between threads: each thread reads on its own
    connection, opened on its first read and closed when the thread ends or the reader is closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._open: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()

    @property
    def _db(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is None:
            if not self.path.exists():
                raise NotIndexedError(f"no catalog at {self.path}: run `viscover ingest` first")
            held = self._local.held = _ThreadConnection(self.path)
            self._open.add(held)
        return held.connection

    def close(self) -> None:
        """Close every thread's connection; call it when no thread reads any more."""
        for held in list(self._open):
            held.connection.close()
        self._local = threading.local()


class Catalog(CatalogView):
    """The writable catalog: one connection, used by the home's single writer. Opening it applies any schema
    migrations the file lacks; idempotent on the same bytes."""

    def __init__(
        self, path: Path, upgrade_model_key: ModelKeyUpgrade | None = None, reserved: dict[str, int] | None = None
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")  # WAL keeps commits atomic
        self._connection.execute("PRAGMA foreign_keys=ON")
        require_fts5(self._connection)
        if schema_version(self._connection) != LATEST:
            migrate(self._connection, upgrade_model_key, reserved or {})

    @property
    def _db(self) -> sqlite3.Connection:
        return self._connection

    def close(self) -> None:
        self._connection.close()

    # -- pins ---------------------------------------------------------------------------------------

    def add(self, pin: Pin) -> tuple[Pin, Change]:
        """Store a pin. The same bytes again update the stored pin instead: new boards are added, and a new
        description or category replaces the old one."""
        with self._transaction():
            existing = self._one("SELECT * FROM pin_rows WHERE sha256 = ?", (pin.sha256,))
            if existing is not None:
                changed = self._merge(existing, pin.description, pin.boards, pin.category)
                return self._one("SELECT * FROM pin_rows WHERE key = ?", (existing.key,)), changed
            taken = self._one("SELECT * FROM pin_rows WHERE pin_id = ?", (pin.pin_id,))
            if taken is not None:
                raise PinConflictError(f"id {pin.pin_id!r} already names a different image")
            cursor = self._db.execute(
                "INSERT INTO pins (pin_id, location, sha256, width, height, description, category, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pin.pin_id,
                    pin.location,
                    pin.sha256,
                    pin.width,
                    pin.height,
                    pin.description,
                    pin.category,
                    time.time(),
                ),
            )
            self._save_to_boards(cursor.lastrowid, pin.boards)
            store_pin_terms(self._db, cursor.lastrowid, pin.description, pin.boards, pin.category)
            return self._one("SELECT * FROM pin_rows WHERE key = ?", (cursor.lastrowid,)), "added"

    def update(
        self, key: int, description: str = "", boards: Sequence[str] = (), category: str | None = None
    ) -> Change:
        """Give a stored pin new boards, description or category (empty values leave the old ones)."""
        with self._transaction():
            existing = self._one("SELECT * FROM pin_rows WHERE key = ?", (key,))
            if existing is None:
                raise UnknownPinError(f"no pin with key {key} in the catalog")
            return self._merge(existing, description, boards, category)

    def _merge(self, pin: Pin, description: str, boards: Sequence[str], category: str | None) -> Change:
        new_boards = [b for b in dict.fromkeys(boards) if b not in pin.boards]
        self._save_to_boards(pin.key, new_boards)
        changes = {}
        if description and description != pin.description:
            changes["description"] = description
        if category and category != pin.category:
            changes["category"] = category
        if changes:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            self._db.execute(f"UPDATE pins SET {assignments} WHERE key = ?", (*changes.values(), pin.key))
        if not (new_boards or changes):
            return "unchanged"
        text = changes.get("description", pin.description), changes.get("category", pin.category)
        store_pin_terms(self._db, pin.key, text[0], (*pin.boards, *new_boards), text[1])
        return "updated"

    def _save_to_boards(self, key: int, boards: Iterable[str]) -> None:
        for board in boards:
            self._db.execute("INSERT OR IGNORE INTO boards (name) VALUES (?)", (board,))
            self._db.execute(
                "INSERT OR IGNORE INTO pin_boards (key, board) SELECT ?, id FROM boards WHERE name = ?", (key, board)
            )

    def delete(self, pin_ids: Iterable[str]) -> DeletedPins:
        """Remove pins with their boards, features and objects; unknown ids raise before anything changes."""
        pins = [self.get(pin_id) for pin_id in pin_ids]
        keys = [p.key for p in pins]
        with self._transaction():
            object_ids = [
                row[0]
                for chunk in _chunks(keys)
                for row in self._db.execute(f"SELECT id FROM objects WHERE key IN ({_marks(chunk)})", chunk)
            ]
            self._db.executemany("DELETE FROM pins WHERE key = ?", [(k,) for k in keys])
        return DeletedPins(keys, object_ids)

    def build_dictionary(self, min_df: int) -> int:
        """Fix the terms annotations may use: those in at least `min_df` pins now. Returns how many."""
        with self._transaction():
            self._db.execute("DELETE FROM dictionary")
            self._db.execute("DELETE FROM dictionary_state")
            self._db.execute("INSERT INTO dictionary (term) SELECT id FROM terms WHERE df >= ?", (min_df,))
            self._db.execute("INSERT INTO dictionary_state (min_df, built_at) VALUES (?, ?)", (min_df, time.time()))
            return self._db.execute("SELECT COUNT(*) FROM dictionary").fetchone()[0]

    # -- features ------------------------------------------------------------------------------------

    def put_features(self, model: str, keys: Sequence[int], vectors: np.ndarray) -> None:
        """Store one batch of vectors in one transaction."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO features (key, model, vector) VALUES (?, ?, ?)",
                [(int(k), model, v.tobytes()) for k, v in zip(keys, vectors, strict=True)],
            )

    # -- objects -------------------------------------------------------------------------------------

    def put_objects(self, run: str, key: int, objects: Sequence[StoredObject], vectors: np.ndarray) -> None:
        """Replace a pin's objects for `run` and mark it done, in one transaction (a crash keeps all or none)."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        with self._transaction():
            self._db.execute("DELETE FROM objects WHERE key = ? AND run = ?", (key, run))
            self._db.executemany(
                "INSERT INTO objects (key, run, x0, y0, x1, y1, label, score, dominant, vector)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (key, run, *o.box, o.label, o.score, int(o.dominant), v.tobytes())
                    for o, v in zip(objects, vectors, strict=True)
                ],
            )
            self._db.execute("INSERT OR REPLACE INTO detected (key, run) VALUES (?, ?)", (key, run))

    def set_dominance(self, run: str, rule: tuple[float, float], dominant_ids: Iterable[int]) -> None:
        """Record the run's dominance rule and flag exactly `dominant_ids` as dominant, in one transaction."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO object_runs (run, dominant_area, dominant_score) VALUES (?, ?, ?)", (run, *rule)
            )
            self._db.execute("UPDATE objects SET dominant = 0 WHERE run = ?", (run,))
            self._db.executemany("UPDATE objects SET dominant = 1 WHERE id = ?", [(int(i),) for i in dominant_ids])

    # -- helpers ---------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (including KeyboardInterrupt)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _pin_from_row(row: tuple) -> Pin:
    key, pin_id, location, sha256, width, height, description, category, boards = row
    return Pin(pin_id, location, sha256, width, height, description, tuple(json.loads(boards)), category, key)
