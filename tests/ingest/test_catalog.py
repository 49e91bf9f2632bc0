from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from viscover import Box
from viscover.errors import PinConflictError, UnknownPinError
from viscover.ingest import Catalog, CatalogReader, Pin, StoredObject
from viscover.ingest.schema import LATEST


def make_pin(pin_id: str, sha: str, boards: tuple[str, ...] = (), description: str = "desc") -> Pin:
    return Pin(pin_id, f"/images/{pin_id}.jpg", sha, 10, 10, description, boards, "cat")


def test_same_bytes_are_one_pin_whose_boards_and_description_update(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    _, change = catalog.add(make_pin("a", "h1", ("b1",)))
    again, change_again = catalog.add(make_pin("other-id", "h1", ("b2", "b1"), description="a new description"))
    assert (change, change_again) == ("added", "updated")
    assert (again.pin_id, again.boards, again.description) == ("a", ("b1", "b2"), "a new description")
    assert catalog.add(make_pin("a", "h1", ("b1",), description=""))[1] == "unchanged"
    assert len(catalog) == 1


def test_boards_are_a_table_indexed_both_ways(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    for name, boards in (("a", ("kitchen", "blue")), ("b", ("kitchen",)), ("c", ())):
        catalog.add(make_pin(name, name, boards))
    assert [p.boards for p in catalog] == [("kitchen", "blue"), ("kitchen",), ()]
    db = sqlite3.connect(tmp_path / "c.db")
    by_board = db.execute(
        "SELECT p.pin_id FROM pin_boards pb JOIN boards b ON b.id = pb.board JOIN pins p ON p.key = pb.key "
        "WHERE b.name = 'kitchen' ORDER BY p.key"
    ).fetchall()
    assert by_board == [("a",), ("b",)]
    plan = " ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN SELECT key FROM pin_boards WHERE board = 1"))
    assert "USING COVERING INDEX pin_boards_by_board" in plan
    assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST


def test_an_id_for_different_bytes_is_refused(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    catalog.add(make_pin("a", "h1"))
    with pytest.raises(PinConflictError, match="already names a different image"):
        catalog.add(make_pin("a", "h2"))
    assert len(catalog) == 1


def test_features_round_trip_and_delete_cascades(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    keys = [catalog.add(make_pin(name, name, ("board",)))[0].key for name in "abc"]
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    catalog.put_features("m/l@0", keys, vectors)
    got_keys, got = catalog.features("m/l@0")
    assert got_keys.tolist() == keys and np.array_equal(got, vectors)
    assert catalog.pins_without_features("m/l@0") == []
    catalog.put_objects("run", keys[1], [StoredObject(-1, keys[1], Box(0, 0, 5, 5), "cup", 0.9, True)], vectors[:1])
    deleted = catalog.delete(["b"])
    assert deleted.keys == [keys[1]] and len(deleted.object_ids) == 1
    assert catalog.features("m/l@0")[0].tolist() == [keys[0], keys[2]] and catalog.objects("run") == []
    with pytest.raises(UnknownPinError, match="'zz'"):
        catalog.delete(["a", "zz"])
    assert len(catalog) == 2  # nothing deleted when one id is unknown


def test_keys_and_object_ids_are_never_reused(tmp_path: Path) -> None:
    """A long-lived reader may still hold an index naming a deleted pin's key: it must never name another."""
    catalog = Catalog(tmp_path / "c.db")
    keys = [catalog.add(make_pin(name, name))[0].key for name in "abc"]
    box = Box(0, 0, 5, 5)
    catalog.put_objects("run", keys[2], [StoredObject(-1, keys[2], box, "cup", 0.9, False)], np.zeros((1, 4)))
    (object_id,) = catalog.delete(["c"]).object_ids
    key = catalog.add(make_pin("d", "d"))[0].key
    catalog.put_objects("run", key, [StoredObject(-1, key, box, "cup", 0.9, False)], np.zeros((1, 4)))
    assert key > keys[2] and catalog.objects("run")[0].id > object_id


def test_long_key_lists_are_read_in_chunks(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    keys = [catalog.add(make_pin(f"p{i}", f"h{i}"))[0].key for i in range(2500)]
    catalog.put_features("m/l@0", keys, np.ones((2500, 2), np.float32))
    assert len(catalog.by_keys(keys)) == 2500
    got, vectors = catalog.features("m/l@0", keys[::-1])
    assert got.tolist() == keys and vectors.shape == (2500, 2)


def test_failed_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    key = catalog.add(make_pin("a", "h1"))[0].key
    with pytest.raises(ValueError):  # three keys, two vectors: the batch fails as a whole
        catalog.put_features("m/l@0", [key, key + 1, key + 2], np.zeros((2, 4), np.float32))
    assert len(catalog.features("m/l@0")[0]) == 0
    reopened = Catalog(tmp_path / "c.db")
    assert [p.pin_id for p in reopened] == ["a"]


def test_readers_use_their_own_read_only_connection_per_thread(tmp_path: Path) -> None:
    import threading

    catalog = Catalog(tmp_path / "c.db")
    catalog.add(make_pin("a", "h1"))
    reader = CatalogReader(tmp_path / "c.db")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append((id(reader._db), reader.get("a").pin_id))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({connection for connection, _ in seen}) == 4 and {pin for _, pin in seen} == {"a"}
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._db.execute("DELETE FROM pins")
    reader.close()


def test_a_thread_s_read_connection_closes_when_the_thread_ends(tmp_path: Path) -> None:
    import threading

    Catalog(tmp_path / "c.db").add(make_pin("a", "h1"))
    reader = CatalogReader(tmp_path / "c.db")
    threads = [threading.Thread(target=lambda: reader.get("a")) for _ in range(5)]
    for thread in threads:
        thread.start()
        thread.join()
    assert len(reader._open) == 0  # no thread left: no connection left open (a server's threads come and go)
    reader.get("a")
    assert len(reader._open) == 1
    reader.close()
