from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viscover.errors import UnknownPinError
from viscover.ingest import Catalog, Pin


def make_pin(pin_id: str, sha: str, boards: tuple[str, ...] = ()) -> Pin:
    return Pin(pin_id, f"/images/{pin_id}.jpg", sha, 10, 10, "desc", boards, "cat")


def test_same_bytes_are_one_pin_and_boards_merge(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    _, created = catalog.add(make_pin("a", "h1", ("b1",)))
    again, created_again = catalog.add(make_pin("other-id", "h1", ("b2", "b1")))
    assert created and not created_again
    assert again.pin_id == "a" and again.boards == ("b1", "b2")
    assert len(catalog) == 1


def test_an_id_for_different_bytes_is_refused(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    catalog.add(make_pin("a", "h1"))
    with pytest.raises(ValueError, match="already names a different image"):
        catalog.add(make_pin("a", "h2"))
    assert len(catalog) == 1


def test_features_round_trip_and_delete_cascades(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    keys = [catalog.add(make_pin(name, name))[0].key for name in "abc"]
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    catalog.put_features("m/l", keys, vectors)
    got_keys, got = catalog.features("m/l")
    assert got_keys.tolist() == keys and np.array_equal(got, vectors)
    assert catalog.pins_without_features("m/l") == []
    assert catalog.delete(["b"]) == [keys[1]]
    assert catalog.features("m/l")[0].tolist() == [keys[0], keys[2]]
    with pytest.raises(UnknownPinError, match="'zz'"):
        catalog.delete(["a", "zz"])
    assert len(catalog) == 2  # nothing deleted when one id is unknown


def test_failed_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    key = catalog.add(make_pin("a", "h1"))[0].key
    with pytest.raises(ValueError):  # three keys, two vectors: the batch fails as a whole
        catalog.put_features("m/l", [key, key + 1, key + 2], np.zeros((2, 4), np.float32))
    assert len(catalog.features("m/l")[0]) == 0
    reopened = Catalog(tmp_path / "c.db")
    assert [p.pin_id for p in reopened] == ["a"]
