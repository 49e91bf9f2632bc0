"""Verify, back up and restore a home (issue 16).

`verify` checks what a crash must never leave behind (a damaged catalog, an unreadable index, indexed keys
that name no pin) apart from work a rerun finishes (pins with features not indexed yet). `backup` copies a
home while servers keep answering: SQLite's online backup of the catalog and the index files of the one
generation published at that moment, taken under the write lock so no writer commits in between (writers
wait; readers do not). `restore` puts a verified backup in place of a home's state.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viscover.config import Settings
from viscover.errors import BadArgumentError
from viscover.index import Generation, IndexStore
from viscover.index.store import GENERATION_FILE
from viscover.ingest.catalog import CatalogReader
from viscover.storage import LOCK_FILE, write_lock

# what a home holds that a backup leaves out: rebuilt on demand, or the catalog and index, copied apart
NOT_COPIED = {"catalog.db", "catalog.db-wal", "catalog.db-shm", LOCK_FILE, "index", "cache", "batch", "evaluations"}


@dataclass
class VerifyReport:
    """What `verify` found: counts, damage (never acceptable) and pending work (a rerun finishes it)."""

    pins: int = 0
    generation: int = 0
    indexed: dict[str, int] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage and not self.pending


def verify(settings: Settings) -> VerifyReport:
    """Check the home's catalog and published indexes against each other (read-only: safe while it serves)."""
    report = VerifyReport()
    path = settings.catalog_path
    if not path.exists():  # nothing stored yet (a first ingest stopped before it began is not damage)
        report.pending.append(f"no catalog at {path}: run `viscover ingest`")
        return report
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        found = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if found != ["ok"]:
            report.damage.append(f"catalog integrity check failed: {'; '.join(found[:5])}")
            return report
        if connection.execute("PRAGMA foreign_key_check").fetchone() is not None:
            report.damage.append("catalog has rows that point at missing rows (foreign_key_check)")
    finally:
        connection.close()
    catalog = CatalogReader(path)
    try:
        with catalog.snapshot():
            report.pins = len(catalog)
            keys = np.fromiter((pin.key for pin in catalog), dtype=np.int64)
            try:
                generation, indexes = IndexStore(settings.index_dir).load()
            except Exception as exc:  # any unreadable file is damage, whatever FAISS or NumPy raised
                report.damage.append(f"the published index cannot be read: {type(exc).__name__}: {exc}")
                return report
            report.generation = generation.number
            for kind, index in indexes.items():
                ids = index.codes.ids()
                report.indexed[kind] = len(ids)
                stored = catalog.feature_keys(index.model) if kind == "visual" else catalog.object_ids(index.model)
                if len(np.unique(ids)) != len(ids):
                    report.damage.append(f"{kind} index holds {len(ids) - len(np.unique(ids))} keys twice")
                _compare(report, kind, ids, keys if kind == "visual" else stored, stored)
    finally:
        catalog.close()
    return report


def _compare(report: VerifyReport, kind: str, ids: np.ndarray, existing: np.ndarray, stored: np.ndarray) -> None:
    """Indexed keys naming nothing are damage; stored vectors not indexed yet are pending work."""
    what = "pin" if kind == "visual" else "stored object"
    dangling = np.setdiff1d(ids, existing)
    if len(dangling):
        report.damage.append(f"{len(dangling)} keys in the {kind} index name no {what} (e.g. {dangling[:5].tolist()})")
    missing = np.setdiff1d(stored, ids)
    if len(missing):
        job = "index" if kind == "visual" else "objects"
        report.pending.append(f"{len(missing)} {what}s with vectors are not in the {kind} index: run `viscover {job}`")


@dataclass
class BackupReport:
    """What `backup` copied."""

    destination: Path
    pins: int
    generation: int
    files: int


def backup(settings: Settings, destination: Path) -> BackupReport:
    """Copy the home to `destination` (which must not exist): written beside it, then renamed into place."""
    destination = Path(destination)
    if destination.exists():
        raise BadArgumentError(f"backup destination {destination} exists: give a new folder")
    if destination.resolve().is_relative_to(settings.home.resolve()):
        raise BadArgumentError(f"backup destination {destination} is inside the home: give a folder outside it")
    if not settings.catalog_path.exists():
        raise BadArgumentError(f"no catalog at {settings.catalog_path}: nothing to back up")
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with write_lock(settings.home, settings.write_lock_timeout_s):
            source = sqlite3.connect(f"{settings.catalog_path.resolve().as_uri()}?mode=ro", uri=True)
            target = sqlite3.connect(partial / "catalog.db")
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
            generation = IndexStore(settings.index_dir).current()
            files = _copy_generation(settings.index_dir, partial / "index", generation)
            for entry in settings.home.iterdir():
                if entry.name not in NOT_COPIED and not entry.name.startswith("."):  # no temporary files
                    files += _copy(entry, partial / entry.name)
        _fsync_tree(partial)
        os.replace(partial, destination)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    copied = verify(settings.model_copy(update={"home": destination}))
    return BackupReport(destination, copied.pins, generation.number, files + 1)


def restore(source: Path, settings: Settings, replace: bool = False) -> VerifyReport:
    """Put the backup at `source` in place of the home's catalog, indexes and files; a home that has a catalog
    is replaced only with `replace`. Stop servers of the home first: they keep their open catalog."""
    source = Path(source)
    if not (source / "catalog.db").is_file():
        raise BadArgumentError(f"{source} is not a backup: it has no catalog.db")
    checked = verify(settings.model_copy(update={"home": source}))
    if checked.damage:
        raise BadArgumentError(f"{source} is not a sound backup: {'; '.join(checked.damage)}")
    if settings.catalog_path.exists() and not replace:
        raise BadArgumentError(f"{settings.home} has a catalog: pass --replace to overwrite it with {source}")
    settings.home.mkdir(parents=True, exist_ok=True)
    with write_lock(settings.home, settings.write_lock_timeout_s):
        staged = settings.home / ".restore"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(source, staged)
        _fsync_tree(staged)
        for name in ("catalog.db-wal", "catalog.db-shm"):  # a stale log must never meet the restored file
            (settings.home / name).unlink(missing_ok=True)
        os.replace(staged / "catalog.db", settings.catalog_path)
        index_dir = settings.index_dir
        index_dir.mkdir(exist_ok=True)
        for derived in ("shards", "raw"):  # made from the replaced generations: their names could recur
            shutil.rmtree(index_dir / derived, ignore_errors=True)
        for entry in (staged / "index").iterdir():
            if entry.name != GENERATION_FILE:
                os.replace(entry, index_dir / entry.name)
        if (staged / "index" / GENERATION_FILE).exists():  # last: it names the files moved before it
            os.replace(staged / "index" / GENERATION_FILE, index_dir / GENERATION_FILE)
        for entry in staged.iterdir():
            if entry.name not in NOT_COPIED:
                shutil.rmtree(settings.home / entry.name, ignore_errors=True)
                os.replace(entry, settings.home / entry.name)
        shutil.rmtree(staged, ignore_errors=True)
    return verify(settings)


def _copy_generation(index_dir: Path, target: Path, generation: Generation) -> int:
    """The files of one published generation, and a generation file naming them (none before the first)."""
    target.mkdir()
    for name in generation.files.values():
        shutil.copy2(index_dir / name, target / name)
    if generation.number:
        state = {"generation": generation.number, "files": generation.files, "published_at": generation.published_at}
        (target / GENERATION_FILE).write_text(json.dumps(state))
    return len(generation.files) + bool(generation.number)


def _copy(entry: Path, target: Path) -> int:
    if entry.is_dir():
        shutil.copytree(entry, target)
        return sum(1 for path in target.rglob("*") if path.is_file())
    shutil.copy2(entry, target)
    return 1


def _fsync_tree(root: Path) -> None:
    """Flush every copied file to disk before the folder is renamed into place."""
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
