"""The catalog: pins and their stored features in one embedded SQLite database.

Every write is one transaction, so an interrupted ingest or extraction leaves only whole rows behind.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viscover.errors import UnknownPinError

SCHEMA = """
CREATE TABLE IF NOT EXISTS pins (
    key INTEGER PRIMARY KEY,            -- stable integer id used by the FAISS indexes
    pin_id TEXT NOT NULL UNIQUE,
    location TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    boards TEXT NOT NULL DEFAULT '[]',  -- JSON list of board ids
    category TEXT,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pins_location ON pins(location);
CREATE TABLE IF NOT EXISTS features (
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    model TEXT NOT NULL,                -- backbone/layer that produced the vector
    vector BLOB NOT NULL,               -- float32, little-endian
    PRIMARY KEY (key, model)
);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,             -- stable integer id used by the object index
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    run TEXT NOT NULL,                  -- detector + embedding that produced it (see search/objects.py)
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    dominant INTEGER NOT NULL,          -- the pin's dominant visual object (section 6)
    vector BLOB NOT NULL                -- float32 embedding of the padded crop
);
CREATE INDEX IF NOT EXISTS objects_run ON objects(run, key);
CREATE TABLE IF NOT EXISTS detected (   -- pins a run has finished, including those with no objects
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    run TEXT NOT NULL,
    PRIMARY KEY (key, run)
);
"""


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


@dataclass(frozen=True)
class StoredObject:
    """A detected object of a pin, as stored: box in the pin's pixels, label, score, dominance."""

    id: int
    key: int
    box: tuple[float, float, float, float]
    label: str
    score: float
    dominant: bool


class Catalog:
    """SQLite-backed store of pins and features; safe to reopen, idempotent on the same bytes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps commits atomic
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- pins ---------------------------------------------------------------------------------------

    def add(self, pin: Pin) -> tuple[Pin, bool]:
        """Store a pin; the same bytes again return the stored pin (boards merged) and False."""
        with self._transaction():
            existing = self._one("SELECT * FROM pins WHERE sha256 = ?", (pin.sha256,))
            if existing is not None:
                merged = tuple(dict.fromkeys(existing.boards + pin.boards))
                if merged != existing.boards:
                    self._db.execute("UPDATE pins SET boards = ? WHERE key = ?", (json.dumps(merged), existing.key))
                return self._one("SELECT * FROM pins WHERE key = ?", (existing.key,)), False
            taken = self._one("SELECT * FROM pins WHERE pin_id = ?", (pin.pin_id,))
            if taken is not None:
                raise ValueError(f"id {pin.pin_id!r} already names a different image ({taken.location})")
            cursor = self._db.execute(
                "INSERT INTO pins (pin_id, location, sha256, width, height, description, boards, category,"
                " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pin.pin_id,
                    pin.location,
                    pin.sha256,
                    pin.width,
                    pin.height,
                    pin.description,
                    json.dumps(list(pin.boards)),
                    pin.category,
                    time.time(),
                ),
            )
            return self._one("SELECT * FROM pins WHERE key = ?", (cursor.lastrowid,)), True

    def get(self, pin_id: str) -> Pin:
        pin = self._one("SELECT * FROM pins WHERE pin_id = ?", (pin_id,))
        if pin is None:
            raise UnknownPinError(f"no pin with id {pin_id!r} in the catalog at {self.path}")
        return pin

    def by_keys(self, keys: Sequence[int]) -> dict[int, Pin]:
        """Pins for index keys, in one query."""
        if not len(keys):
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._db.execute(f"SELECT * FROM pins WHERE key IN ({marks})", [int(k) for k in keys])
        return {pin.key: pin for pin in map(_pin_from_row, rows)}

    def known_locations(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT location FROM pins")}

    def delete(self, pin_ids: Iterable[str]) -> list[int]:
        """Remove pins and their features; returns the index keys that must leave the indexes."""
        pins = [self.get(pin_id) for pin_id in pin_ids]
        with self._transaction():
            self._db.executemany("DELETE FROM pins WHERE key = ?", [(p.key,) for p in pins])
        return [p.key for p in pins]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM pins").fetchone()[0]

    def __iter__(self) -> Iterator[Pin]:
        return map(_pin_from_row, self._db.execute("SELECT * FROM pins ORDER BY key"))

    def categories(self) -> dict[int, str | None]:
        return dict(self._db.execute("SELECT key, category FROM pins ORDER BY key").fetchall())

    # -- features ------------------------------------------------------------------------------------

    def pins_without_features(self, model: str) -> list[Pin]:
        rows = self._db.execute(
            "SELECT * FROM pins WHERE key NOT IN (SELECT key FROM features WHERE model = ?) ORDER BY key",
            (model,),
        )
        return list(map(_pin_from_row, rows))

    def feature_keys(self, model: str) -> np.ndarray:
        """Keys of the pins that have a stored vector for `model` (cheap: no vectors are read)."""
        rows = self._db.execute("SELECT key FROM features WHERE model = ? ORDER BY key", (model,)).fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def put_features(self, model: str, keys: Sequence[int], vectors: np.ndarray) -> None:
        """Store one batch of vectors in one transaction."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO features (key, model, vector) VALUES (?, ?, ?)",
                [(int(k), model, v.tobytes()) for k, v in zip(keys, vectors, strict=True)],
            )

    def features(self, model: str, keys: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(keys, float32 matrix) of stored vectors, filled row by row into one preallocated array."""
        if keys is None:
            query, args = "SELECT key, vector FROM features WHERE model = ? ORDER BY key", (model,)
            count = self._db.execute("SELECT COUNT(*) FROM features WHERE model = ?", (model,)).fetchone()[0]
        else:
            marks = ",".join("?" * len(keys))
            query = f"SELECT key, vector FROM features WHERE model = ? AND key IN ({marks}) ORDER BY key"
            args = (model, *map(int, keys))
            count = len(keys)
        out_keys = np.empty(count, dtype=np.int64)
        out: np.ndarray | None = None
        n = 0
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
            "SELECT * FROM pins WHERE key NOT IN (SELECT key FROM detected WHERE run = ?) ORDER BY key", (run,)
        )
        return list(map(_pin_from_row, rows))

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

    def objects(self, run: str, ids: Sequence[int] | None = None, key: int | None = None) -> list[StoredObject]:
        """Stored objects of a run: all, those with the given ids, or those of one pin."""
        query, args = "SELECT id, key, x0, y0, x1, y1, label, score, dominant FROM objects WHERE run = ?", [run]
        if ids is not None:
            query += f" AND id IN ({','.join('?' * len(ids))})"
            args += [int(i) for i in ids]
        if key is not None:
            query += " AND key = ?"
            args.append(key)
        rows = self._db.execute(query + " ORDER BY id", args)
        return [StoredObject(r[0], r[1], tuple(r[2:6]), r[6], r[7], bool(r[8])) for r in rows]

    def object_vectors(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """(object ids, float32 matrix) of every object of a run."""
        rows = self._db.execute("SELECT id, vector FROM objects WHERE run = ? ORDER BY id", (run,)).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])

    # -- helpers ---------------------------------------------------------------------------------------

    def _one(self, query: str, args: tuple) -> Pin | None:
        row = self._db.execute(query, args).fetchone()
        return None if row is None else _pin_from_row(row)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (including KeyboardInterrupt)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _pin_from_row(row: tuple) -> Pin:
    key, pin_id, location, sha256, width, height, description, boards, category, _added = row
    return Pin(pin_id, location, sha256, width, height, description, tuple(json.loads(boards)), category, key)
