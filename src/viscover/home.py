"""A home directory as this release lays it out: created, or migrated from an older release, before use.

Opening a home is cheap when it is current (one read of the catalog's schema version). Otherwise the home's
write lock is taken and the index files, then the catalog, are brought up to date; a crash in between
leaves a state the next opening finishes.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3

from viscover.config import Settings
from viscover.errors import ViscoverError
from viscover.features.registry import model_key
from viscover.index import IndexStore
from viscover.ingest.catalog import Catalog, ObjectRun
from viscover.ingest.schema import LATEST
from viscover.storage import write_lock

log = logging.getLogger(__name__)


def prepare_home(settings: Settings) -> None:
    """Create the home's catalog, or migrate the catalog and index files of an older release."""
    if _is_current(settings):
        return
    with write_lock(settings.home, settings.write_lock_timeout_s):
        upgrade = _model_key_upgrade(settings)
        store = IndexStore(settings.index_dir)
        store.adopt_legacy(upgrade)
        # Keys the index files may hold must never be handed out again (older releases reused them).
        _, indexes = store.load()
        reserved = {
            table: int(indexes[kind].codes.ids().max())
            for kind, table in (("visual", "pins"), ("objects", "objects"))
            if kind in indexes and len(indexes[kind].codes)
        }
        Catalog(settings.catalog_path, upgrade_model_key=upgrade, reserved=reserved).close()


def _is_current(settings: Settings) -> bool:
    path = settings.catalog_path
    if not path.exists():
        return False
    if IndexStore(settings.index_dir).has_legacy_files():
        return False
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute("PRAGMA user_version").fetchone()[0] == LATEST
    finally:
        connection.close()


def _model_key_upgrade(settings: Settings):
    """Names of feature spaces and object runs from before weights digests (`backbone/layer`) → with the
    digest of the weights the backbone has now, which are the weights the older release embedded with."""

    def upgrade(key: str) -> str:
        if "|" in key:  # an object run
            run = ObjectRun.parse(key)
            return str(dataclasses.replace(run, model=upgrade(run.model)))
        if "@" in key:
            return key
        backbone, _, layer = key.partition("/")
        try:
            return model_key(backbone, layer, settings)
        except ViscoverError as exc:
            log.warning("features %s keep their old name (%s); `viscover index` will extract them again", key, exc)
            return key

    return upgrade
