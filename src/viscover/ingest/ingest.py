"""Building a catalog from a folder or manifest: idempotent (same bytes → same pin) and resumable
(locations already stored are skipped; each pin is committed on its own)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from viscover.config import Settings
from viscover.errors import BadImageError
from viscover.ingest.catalog import Catalog, Pin
from viscover.ingest.images import load_image
from viscover.ingest.sources import PinSource, SourceError, iter_sources


@dataclass
class IngestReport:
    """What an ingest did; `failures` pairs each skipped item with the reason."""

    added: int = 0
    duplicates: int = 0
    already_stored: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.duplicates} duplicates of stored images, "
            f"{self.already_stored} already stored, {len(self.failures)} skipped"
        )


def ingest(catalog: Catalog, path: Path, settings: Settings, progress: bool = True) -> IngestReport:
    """Add every image under `path` (folder or manifest) to the catalog."""
    report = IngestReport()
    known = catalog.known_locations()
    todo: list[PinSource] = []
    for source in iter_sources(path):
        if isinstance(source, SourceError):
            report.failures.append((source.where, source.reason))
        elif source.location in known:
            report.already_stored += 1
        else:
            todo.append(source)

    def read(source: PinSource) -> Pin | str:
        try:
            image = load_image(source.location, settings.max_image_pixels, settings.fetch_timeout_s)
        except BadImageError as exc:
            return str(exc)
        return Pin(
            pin_id=source.pin_id or image.sha256[:16],
            location=source.location,
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            description=source.description,
            boards=source.boards,
            category=source.category,
        )

    with ThreadPoolExecutor(settings.decode_workers) as pool:
        results = zip(todo, pool.map(read, todo), strict=True)
        for source, result in tqdm(results, total=len(todo), unit="img", desc="ingest", disable=not progress):
            if isinstance(result, str):
                report.failures.append((source.location, result))
                continue
            try:
                _, created = catalog.add(result)
            except ValueError as exc:
                report.failures.append((source.location, str(exc)))
                continue
            if created:
                report.added += 1
            else:
                report.duplicates += 1
    return report
