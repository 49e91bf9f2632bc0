"""The catalog's versioned schema: `PRAGMA user_version` counts the migrations applied, and opening a catalog
applies the missing ones in order, each in one transaction (the caller holds the home's write lock).

A new catalog runs every migration from the first, so the layout of a new home and of a migrated one come
from the same code.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable

from viscover.errors import ViscoverError
from viscover.ingest.text import pin_terms

ModelKeyUpgrade = Callable[[str], str]  # a feature-space or object-run key without a weights digest → with one

# Version 1: the layout of release 0.1.0 (boards as JSON, integer keys that SQLite may reuse).
_V1 = """
CREATE TABLE IF NOT EXISTS pins (
    key INTEGER PRIMARY KEY,
    pin_id TEXT NOT NULL UNIQUE,
    location TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    boards TEXT NOT NULL DEFAULT '[]',
    category TEXT,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pins_location ON pins(location);
CREATE TABLE IF NOT EXISTS features (
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (key, model)
);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    run TEXT NOT NULL,
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    dominant INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_run ON objects(run, key);
CREATE TABLE IF NOT EXISTS detected (
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    run TEXT NOT NULL,
    PRIMARY KEY (key, run)
);
"""

# Version 2: keys never reused (AUTOINCREMENT), boards as a table indexed both ways, the dominance rule per run.
_V2 = """
CREATE TABLE pins_v2 (
    key INTEGER PRIMARY KEY AUTOINCREMENT,  -- the id the FAISS indexes use; never reused after a delete
    pin_id TEXT NOT NULL UNIQUE,
    location TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category TEXT,
    added_at REAL NOT NULL
);
INSERT INTO pins_v2 (key, pin_id, location, sha256, width, height, description, category, added_at)
    SELECT key, pin_id, location, sha256, width, height, description, category, added_at FROM pins;
CREATE TABLE boards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE pin_boards (                   -- a pin saved to a board; rowid order is save order
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    board INTEGER NOT NULL REFERENCES boards(id),
    UNIQUE (key, board)
);
CREATE INDEX pin_boards_by_board ON pin_boards(board, key);
INSERT OR IGNORE INTO boards (name)
    SELECT j.value FROM pins p, json_each(p.boards) j ORDER BY p.key, j.key;
INSERT OR IGNORE INTO pin_boards (key, board)
    SELECT p.key, b.id FROM pins p, json_each(p.boards) j JOIN boards b ON b.name = j.value ORDER BY p.key, j.key;
DROP TABLE pins;
ALTER TABLE pins_v2 RENAME TO pins;
CREATE INDEX pins_location ON pins(location);
CREATE TABLE objects_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the id the object index uses; never reused
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    run TEXT NOT NULL,                      -- detector, threshold, feature space and context (search/objects.py)
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    dominant INTEGER NOT NULL,              -- the pin's dominant visual object (section 6)
    vector BLOB NOT NULL                    -- float32 embedding of the padded crop
);
INSERT INTO objects_v2 SELECT id, key, run, x0, y0, x1, y1, label, score, dominant, vector FROM objects;
DROP TABLE objects;
ALTER TABLE objects_v2 RENAME TO objects;
CREATE INDEX objects_run ON objects(run, key);
CREATE INDEX objects_key ON objects(key);
CREATE TABLE object_runs (                  -- the dominance rule the run's `dominant` flags follow
    run TEXT PRIMARY KEY,
    dominant_area REAL NOT NULL,
    dominant_score REAL NOT NULL
);
CREATE VIEW pin_rows AS
    SELECT p.key, p.pin_id, p.location, p.sha256, p.width, p.height, p.description, p.category,
        (SELECT json_group_array(name) FROM (
            SELECT b.name FROM pin_boards pb JOIN boards b ON b.id = pb.board WHERE pb.key = p.key ORDER BY pb.rowid
        )) AS boards
    FROM pins p;
"""


def _statements(script: str) -> list[str]:
    """The statements of a script, one by one (a trigger's body holds semicolons of its own)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return statements


def _v1_release_layout(db: sqlite3.Connection, _upgrade: ModelKeyUpgrade | None) -> None:
    for statement in _statements(_V1):
        db.execute(statement)


def _v2_stable_keys_and_boards(db: sqlite3.Connection, _upgrade: ModelKeyUpgrade | None) -> None:
    for statement in _statements(_V2):
        db.execute(statement)


def _v3_weights_digest_in_model_keys(db: sqlite3.Connection, upgrade: ModelKeyUpgrade | None) -> None:
    """Feature spaces were named backbone/layer; now backbone/layer@digest of the weights that made them."""
    renames = [
        (table, column, old)
        for table, column in (("features", "model"), ("objects", "run"), ("detected", "run"), ("object_runs", "run"))
        for (old,) in db.execute(f"SELECT DISTINCT {column} FROM {table}")
    ]
    if renames and upgrade is None:
        raise ViscoverError("this catalog comes from an older viscover: open its home with viscover to migrate it")
    for table, column, old in renames:
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (upgrade(old), old))


# Version 4: the pins' text as terms (for annotations) and as a full-text index (for keyword search), both kept
# in step with the pins inside the same transactions: terms by the catalog's writes, the rest by triggers.
_V4 = """
CREATE TABLE terms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    term TEXT NOT NULL UNIQUE,
    df INTEGER NOT NULL DEFAULT 0          -- how many pins hold the term (kept by the triggers below)
);
CREATE TABLE pin_terms (
    key INTEGER NOT NULL REFERENCES pins(key) ON DELETE CASCADE,
    term INTEGER NOT NULL REFERENCES terms(id),
    count INTEGER NOT NULL,
    PRIMARY KEY (key, term)
) WITHOUT ROWID;
CREATE INDEX pin_terms_by_term ON pin_terms(term, key);
CREATE TRIGGER pin_terms_added AFTER INSERT ON pin_terms BEGIN UPDATE terms SET df = df + 1 WHERE id = new.term; END;
CREATE TRIGGER pin_terms_removed AFTER DELETE ON pin_terms BEGIN UPDATE terms SET df = df - 1 WHERE id = old.term; END;
CREATE TABLE dictionary (                 -- the terms annotations use, once `viscover terms` has built it
    term INTEGER PRIMARY KEY REFERENCES terms(id)
);
CREATE TABLE dictionary_state (min_df INTEGER NOT NULL, built_at REAL NOT NULL);
CREATE VIRTUAL TABLE pin_text USING fts5(description, boards, category);
INSERT INTO pin_text (rowid, description, boards, category)
    SELECT key, description, (SELECT group_concat(value, ' ; ') FROM json_each(boards)), coalesce(category, '')
    FROM pin_rows;
CREATE TRIGGER pins_text_added AFTER INSERT ON pins BEGIN
    INSERT INTO pin_text (rowid, description, boards, category)
        VALUES (new.key, new.description, '', coalesce(new.category, ''));
END;
CREATE TRIGGER pins_text_changed AFTER UPDATE OF description, category ON pins BEGIN
    UPDATE pin_text SET description = new.description, category = coalesce(new.category, '') WHERE rowid = new.key;
END;
CREATE TRIGGER pins_text_removed AFTER DELETE ON pins BEGIN
    DELETE FROM pin_text WHERE rowid = old.key;
END;
CREATE TRIGGER pin_boards_text AFTER INSERT ON pin_boards BEGIN
    UPDATE pin_text SET boards = (
        SELECT group_concat(b.name, ' ; ') FROM pin_boards pb JOIN boards b ON b.id = pb.board WHERE pb.key = new.key
    ) WHERE rowid = new.key;
END;
"""


def require_fts5(db: sqlite3.Connection) -> None:
    """Keyword search and the catalog's text triggers need SQLite's FTS5: say so on opening, not mid-write."""
    if not db.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()[0]:
        raise ViscoverError(
            f"this Python's SQLite {sqlite3.sqlite_version} lacks FTS5 (full-text search): use a Python built with it"
        )


def _v4_pin_text(db: sqlite3.Connection, _upgrade: ModelKeyUpgrade | None) -> None:
    require_fts5(db)
    for statement in _statements(_V4):
        db.execute(statement)
    for key, description, boards, category in db.execute(
        "SELECT key, description, boards, category FROM pin_rows"
    ).fetchall():
        store_pin_terms(db, key, description, json.loads(boards), category)


def store_pin_terms(
    db: sqlite3.Connection, key: int, description: str, boards: Iterable[str], category: str | None
) -> None:
    """Replace a pin's term counts (the triggers keep document frequencies right); call inside the pin's
    own transaction."""
    db.execute("DELETE FROM pin_terms WHERE key = ?", (key,))
    counts = pin_terms(description, boards, category)
    if not counts:
        return
    db.executemany("INSERT OR IGNORE INTO terms (term) VALUES (?)", [(term,) for term in counts])
    ids = dict(
        db.execute(
            "SELECT term, id FROM terms WHERE term IN (SELECT value FROM json_each(?))", [json.dumps(list(counts))]
        )
    )
    db.executemany(
        "INSERT INTO pin_terms (key, term, count) VALUES (?, ?, ?)",
        [(key, ids[term], count) for term, count in counts.items()],
    )


# Related Pins keeps a copy of the saves and reads only new ones (rowid > the last seen); this running count and
# checksum of every save, kept by triggers, tells it cheaply on every request whether some went (a deleted
# save's rowid may be given to a new one) and it must read them all again.
_V5 = """
CREATE TABLE board_save_digest (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    saves INTEGER NOT NULL,
    checksum INTEGER NOT NULL
);
INSERT INTO board_save_digest (id, saves, checksum)
    SELECT 1, COUNT(*), COALESCE(SUM((key * 1000003 + board) % 1000000007), 0) FROM pin_boards;
CREATE TRIGGER pin_boards_saved AFTER INSERT ON pin_boards BEGIN
    UPDATE board_save_digest SET saves = saves + 1, checksum = checksum + (new.key * 1000003 + new.board) % 1000000007;
END;
CREATE TRIGGER pin_boards_unsaved AFTER DELETE ON pin_boards BEGIN
    UPDATE board_save_digest SET saves = saves - 1, checksum = checksum - (old.key * 1000003 + old.board) % 1000000007;
END;
"""


def _v5_board_save_digest(db: sqlite3.Connection, _upgrade: ModelKeyUpgrade | None) -> None:
    for statement in _statements(_V5):
        db.execute(statement)


MIGRATIONS = (
    _v1_release_layout,
    _v2_stable_keys_and_boards,
    _v3_weights_digest_in_model_keys,
    _v4_pin_text,
    _v5_board_save_digest,
)
LATEST = len(MIGRATIONS)


def schema_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(
    db: sqlite3.Connection, upgrade: ModelKeyUpgrade | None = None, reserved: dict[str, int] | None = None
) -> list[int]:
    """Apply the migrations this catalog lacks; returns the versions applied. `db` is in autocommit mode.

    `reserved` gives, per table, the highest key an index file may still hold: older releases reused keys,
    so each migration's transaction also makes sure they are never handed out again (a crash between
    migrations then cannot leave them unreserved)."""
    version = schema_version(db)
    if version > LATEST:
        raise ViscoverError(
            f"this catalog has schema version {version}, newer than this viscover knows ({LATEST}): upgrade viscover"
        )
    applied = []
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("PRAGMA foreign_keys=OFF")  # tables are rebuilt; a no-op inside a transaction, so set first
        db.execute("BEGIN IMMEDIATE")
        try:
            step(db, upgrade)
            _reserve_keys(db, reserved or {})
            broken = db.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise ViscoverError(f"migration {number} would leave dangling references: {broken[:5]}")
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.execute("PRAGMA foreign_keys=ON")
        applied.append(number)
    return applied


def _reserve_keys(db: sqlite3.Connection, reserved: dict[str, int]) -> None:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        return  # no AUTOINCREMENT table yet: the migration that adds them reserves
    for table, highest in reserved.items():
        db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (highest, table))
        db.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS "
            "(SELECT 1 FROM sqlite_sequence WHERE name = ?)",
            (table, highest, table),
        )
