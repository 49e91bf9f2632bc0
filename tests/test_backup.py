"""`viscover verify` tells damage from pending work; `backup` copies a home that is serving, `restore` brings
that state back exactly."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import caltech_image
from viscover import Engine, Searcher
from viscover.backup import backup, restore, verify
from viscover.errors import BadArgumentError
from viscover.search import PinQuery

VISCOVER = Path(sys.executable).parent / "viscover"


def results(home: Path) -> list[list[str]]:
    with Searcher.open(home) as searcher:
        pins = sorted(pin.pin_id for pin in searcher.catalog)
        return [[hit.pin_id for hit in searcher.search(PinQuery(pin), 10)] for pin in pins[:10]]


def test_verify_tells_damage_from_pending_work(engine: Engine, tmp_path: Path) -> None:
    assert verify(engine.settings).ok
    (tmp_path / "new").mkdir()
    shutil.copy(caltech_image("pagoda", 40), tmp_path / "new")
    engine.ingest(tmp_path / "new", progress=False)
    engine.extract(engine.settings.backbone, engine.settings.layer, progress=False)  # features, not yet indexed
    pending = verify(engine.settings)
    assert pending.damage == [] and pending.pending == [
        "1 pins with vectors are not in the visual index: run `viscover index`"
    ]
    engine.index(progress=False)
    assert verify(engine.settings).ok
    database = sqlite3.connect(engine.settings.catalog_path)  # a pin removed behind the index's back
    database.execute("PRAGMA foreign_keys=ON")
    database.execute("DELETE FROM pins WHERE key = (SELECT MIN(key) FROM pins)")
    database.commit()
    database.close()
    damaged = verify(engine.settings)
    assert len(damaged.damage) == 1 and "keys in the visual index name no pin" in damaged.damage[0]
    done = subprocess.run(
        [str(VISCOVER), "--home", str(engine.settings.home), "verify"], capture_output=True, text=True
    )
    assert done.returncode == 1 and "damage:" in done.stderr and "problems found" in done.stdout
    generation = engine.store.current()
    (engine.settings.index_dir / generation.files["visual"]).write_bytes(b"not an index")
    assert "the published index cannot be read" in verify(engine.settings).damage[0]


def test_a_backup_taken_while_serving_restores_that_state_exactly(engine: Engine, tmp_path: Path) -> None:
    home = engine.settings.home
    before = results(home)
    with Searcher.open(home) as serving:  # a reader keeps its snapshot and connections open meanwhile
        serving.search(PinQuery(next(iter(serving.catalog)).pin_id), 5)
        report = backup(engine.settings, tmp_path / "copy")
    assert report.pins == 30 and report.generation == engine.store.current().number
    assert not (tmp_path / ".copy.partial").exists()
    with pytest.raises(BadArgumentError, match="exists"):
        backup(engine.settings, tmp_path / "copy")
    with pytest.raises(BadArgumentError, match="inside the home"):
        backup(engine.settings, home / "backups" / "copy")
    engine.delete([pin.pin_id for pin in list(engine.catalog)[:5]])  # the home moves on after the backup
    assert len(engine.catalog) == 25
    with pytest.raises(BadArgumentError, match="pass --replace"):
        restore(tmp_path / "copy", engine.settings)
    fresh = engine.settings.model_copy(update={"home": tmp_path / "fresh"})
    assert restore(tmp_path / "copy", fresh).ok
    assert results(tmp_path / "fresh") == before
    engine.close()
    assert restore(tmp_path / "copy", engine.settings, replace=True).pins == 30
    assert results(home) == before
    with Engine.open(home) as reopened:  # and it goes on working: a new pin is indexed
        (tmp_path / "new").mkdir()
        shutil.copy(caltech_image("pagoda", 40), tmp_path / "new")
        reopened.ingest(tmp_path / "new", progress=False)
        assert reopened.index(progress=False).indexed == 31
    assert verify(engine.settings).ok
