"""A home made by release 0.1.0 (tests/fixtures/release-0.1.0-home) opens in place: schema migrated under the
write lock, features and index kept (nothing extracted again), boards moved into their table, keys never
reused, and searches by image and by object still find what they found."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from PIL import Image

from viscover import Box, BytesQuery, Engine, PinQuery, Searcher
from viscover.errors import ViscoverError
from viscover.ingest.schema import LATEST
from viscover.search import index_objects, object_run
from viscover.storage import write_lock

FIXTURE = Path(__file__).parent / "fixtures" / "release-0.1.0-home"


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "fixture")
    # the release ingested its scenes from /tmp/fixture-v0/images: point its pins at this copy's images
    db = sqlite3.connect(tmp_path / "fixture" / "home" / "catalog.db")
    with db:
        db.execute("UPDATE pins SET location = replace(location, '/tmp/fixture-v0', ?)", (str(tmp_path / "fixture"),))
    db.close()
    return tmp_path / "fixture" / "home"


def manifest() -> list[dict]:
    return [json.loads(line) for line in (FIXTURE / "manifest.jsonl").read_text().splitlines()]


def test_a_release_home_migrates_in_place_and_keeps_its_index(old_home: Path) -> None:
    db = sqlite3.connect(old_home / "catalog.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert "boards" in [row[1] for row in db.execute("PRAGMA table_info(pins)")]
    db.close()
    with Engine.open(old_home, binarizer="median", code_bits=1280, object_windows=False) as engine:
        db = sqlite3.connect(old_home / "catalog.db")
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST
        assert "boards" not in [row[1] for row in db.execute("PRAGMA table_info(pins)")]
        assert {p.pin_id: p.boards for p in engine.catalog} == {r["id"]: tuple(r["boards"]) for r in manifest()}
        # the old vectors now carry the digest of the weights that made them: nothing is extracted again
        assert len(engine.catalog.feature_keys(engine.feature_key)) == 24
        report = engine.index(progress=False)
        assert (report.extracted, report.rebuilt, report.indexed) == (0, False, 24)
        assert engine.visual_index.model == engine.feature_key
        index_files = sorted(p.name for p in (old_home / "index").iterdir())
        assert index_files == ["generation.json", "objects-1.npz", "visual-1.npz"]
        # a query of the same pixels, embedded by this release, lands on the vector the old release stored
        for row in manifest()[::5]:
            data = (FIXTURE / row["image"]).read_bytes()
            top = engine.search(BytesQuery(data), k=1)[0]
            assert top.pin_id == row["id"] and top.distance == 0
        # objects: same run under its new name, and object search still finds the scene
        run = object_run(engine.settings, engine.feature_key)
        objects = engine.catalog.objects(run)
        assert len(objects) == 6 and index_objects(engine, progress=False).pins == 24 - 6
        first = objects[0]
        pin = next(p for p in engine.catalog if p.key == first.key)
        scene = (FIXTURE / "images" / f"{pin.pin_id}.png").read_bytes()
        assert engine.search_objects(BytesQuery(scene, Box(*first.box)), k=1)[0].pin_id == pin.pin_id


def test_keys_of_a_migrated_home_are_not_reused(old_home: Path, tmp_path: Path) -> None:
    with Engine.open(old_home) as engine:
        last = max(engine.catalog, key=lambda pin: pin.key)
        engine.delete([last.pin_id])
        (tmp_path / "new").mkdir()
        shutil.copy(FIXTURE / "images" / f"{last.pin_id}.png", tmp_path / "new" / "again.png")
        engine.ingest(tmp_path / "new", progress=False)
        (readded,) = [pin for pin in engine.catalog if pin.location.endswith("again.png")]
        assert readded.key > last.key


def test_keys_an_old_index_still_holds_are_never_handed_out(old_home: Path, tmp_path: Path) -> None:
    """Release 0.1.0 could die between removing a pin from the catalog and saving the index: the index then
    names a key the catalog no longer has, which SQLite would have handed out again."""
    db = sqlite3.connect(old_home / "catalog.db")
    highest = db.execute("SELECT MAX(key) FROM pins").fetchone()[0]
    for table in ("features", "objects", "detected", "pins"):
        db.execute(f"DELETE FROM {table} WHERE key = ?", (highest,))
    db.commit()
    db.close()
    with Engine.open(old_home) as engine:
        assert highest in engine.visual_index.codes.ids()
        (tmp_path / "new").mkdir()
        shutil.copy(FIXTURE / "images" / "scene-00.png", tmp_path / "new" / "first.png")
        Image.new("RGB", (64, 64), (90, 200, 90)).save(tmp_path / "new" / "green.png")
        engine.ingest(tmp_path / "new", progress=False)
        (green,) = [pin for pin in engine.catalog if pin.location.endswith("green.png")]
        assert green.key > highest


def test_a_current_home_opens_without_the_write_lock_and_a_newer_one_is_refused(old_home: Path) -> None:
    with Engine.open(old_home):
        pass  # migrated
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with write_lock(old_home, 1):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:  # with no time to wait for the lock, opening works only if it does not need the lock
        with Searcher.open(old_home, write_lock_timeout_s=0) as searcher:
            assert searcher.search(PinQuery("scene-03"), k=1)[0].pin_id == "scene-03"
    finally:
        release.set()
        holder.join()
    db = sqlite3.connect(old_home / "catalog.db")
    db.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.close()
    with pytest.raises(ViscoverError, match="newer than this viscover knows"):
        Engine.open(old_home)
