"""Building a catalog from a folder or manifest: idempotent (same bytes → same pin), resumable (each pin is
committed on its own; stored locations are not read again) and updating (a known image that arrives with
new boards, a new description or a new category updates its pin)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from viscover.config import Settings
from viscover.errors import BadImageError, PinConflictError
from viscover.ingest.catalog import Catalog, Change, Pin
from viscover.ingest.images import load_image
from viscover.ingest.sources import PinSource, SourceError, iter_sources


@dataclass
class IngestReport:
    """What an ingest did; `failures` pairs each skipped item with the reason."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def count(self, change: Change) -> None:
        setattr(self, change, getattr(self, change) + 1)

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} already stored, {len(self.failures)} skipped"
        )


def ingest(catalog: Catalog, path: Path, settings: Settings, progress: bool = True) -> IngestReport:
    """Add every image under `path` (folder or manifest) to the catalog, or update the pins it already has."""
    report = IngestReport()
    known = catalog.locations()
    todo: list[PinSource] = []
    for source in iter_sources(path):
        if isinstance(source, SourceError):
            report.failures.append((source.where, source.reason))
        elif source.location in known:
            report.count(catalog.update(known[source.location], source.description, source.boards, source.category))
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
                _, change = catalog.add(result)
            except PinConflictError as exc:
                report.failures.append((source.location, str(exc)))
                continue
            report.count(change)
    return report
