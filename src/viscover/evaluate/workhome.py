"""An evaluation's own home: a catalog built from manifest rows beside the user's home, with the user's model
files and caches, ingested and indexed once and reused (ingest and index resume where a run stopped)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from viscover.config import Settings
from viscover.search import Engine
from viscover.storage import atomic_path

log = logging.getLogger(__name__)


def evaluation_settings(settings: Settings, work: Path) -> Settings:
    """The user's settings, with `work` as the home and the user's model files and caches."""
    return settings.model_copy(
        update={"home": work, "models_dir": settings.model_files, "cache_dir": settings.model_cache}
    )


def ingest_rows(engine: Engine, rows: Sequence[Mapping[str, object]], progress: bool) -> dict[str, int]:
    """Write the rows as the home's manifest (image paths made absolute: the manifest lives elsewhere), ingest
    and index them; each stored pin id's key (rows that could not be ingested are logged and left out)."""
    manifest = engine.settings.home / "catalog.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({**{k: v for k, v in row.items() if v is not None}, "image": str(Path(str(row["image"])).resolve())})
        for row in rows
    ]
    with atomic_path(manifest) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))
    report = engine.ingest(manifest, progress)
    for where, reason in report.failures:
        log.warning("left out of the catalog: %s (%s)", where, reason)
    engine.index(progress)
    return {pin.pin_id: pin.key for pin in engine.catalog}
