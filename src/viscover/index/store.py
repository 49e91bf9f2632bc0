"""The published index files of a home, by generation.

A writer saves each new index under a fresh name (`visual-7.npz`), then replaces one small generation file
that names the current visual and object index files. Readers read that file (a few dozen bytes) per request
and load a new generation whole, so they never mix files of two generations, and a crash at any instant
leaves either the old generation or the new one. Files of the previous generation are kept for readers
still loading them; older ones are removed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from viscover.index.visual_index import VisualIndex
from viscover.storage import atomic_path

GENERATION_FILE = "generation.json"
KINDS = ("visual", "objects")
LEGACY_FILES = {"visual": "visual.npz", "objects": "objects.npz"}  # release 0.1.0: no generation file
_LOAD_RETRIES = 5


@dataclass(frozen=True)
class Generation:
    """One published state: its number, the file of each index kind it has, and when it was published
    (so that a home whose index folder was wiped and numbered afresh still reads as changed)."""

    number: int = 0
    files: dict[str, str] = field(default_factory=dict)
    published_at: float = 0.0

    def name(self, kind: str) -> str:
        """The name the kind's index was published under (`visual-12`): the same while that index is unchanged."""
        return Path(self.files[kind]).stem


class IndexStore:
    """The index directory of a home: read by any process, written by the home's single writer."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._generation_path = directory / GENERATION_FILE

    def current(self) -> Generation:
        """The published generation (number 0 and no files before the first); the per-request check."""
        try:
            state = json.loads(self._generation_path.read_bytes())
        except FileNotFoundError:
            return Generation()
        return Generation(state["generation"], state["files"], state["published_at"])

    def load(self, loaded: dict[str, VisualIndex] | None = None) -> tuple[Generation, dict[str, VisualIndex]]:
        """The current generation and its indexes, read as one; retried if a writer replaces it meanwhile.
        Indexes in `loaded` (by file name) are reused instead of read again."""
        loaded = loaded or {}
        for attempt in range(_LOAD_RETRIES):
            generation = self.current()
            try:
                indexes = {
                    kind: loaded[name] if name in loaded else VisualIndex.load(self.directory / name)
                    for kind, name in generation.files.items()
                }
            except FileNotFoundError:  # pruned by a writer two generations on: read the newer one
                if attempt == _LOAD_RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
                continue
            return generation, indexes
        raise AssertionError("unreachable")

    def publish(self, **changes: VisualIndex | None) -> Generation:
        """Write the given indexes (None removes that kind) as a new generation; the others carry over.
        Only the home's writer calls this."""
        unknown = set(changes) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown index kinds {sorted(unknown)}; known: {KINDS}")
        previous = self.current()
        number = previous.number + 1
        files = dict(previous.files)
        for kind, index in changes.items():
            if index is None:
                files.pop(kind, None)
            else:
                files[kind] = f"{kind}-{number}.npz"
                index.save(self.directory / files[kind])
        generation = Generation(number, files, time.time())
        with atomic_path(self._generation_path) as tmp, tmp.open("w") as handle:
            json.dump({"generation": number, "files": files, "published_at": generation.published_at}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        self._prune(keep={*files.values(), *previous.files.values()})
        return generation

    def has_legacy_files(self) -> bool:
        """An index directory of release 0.1.0 that no generation file names yet."""
        return not self._generation_path.exists() and any(
            (self.directory / name).exists() for name in LEGACY_FILES.values()
        )

    def adopt_legacy(self, upgrade_model: Callable[[str], str]) -> dict[str, VisualIndex]:
        """Publish a release-0.1.0 index directory (fixed file names, no generation file) as a generation,
        renaming each index's model with `upgrade_model`; returns what it adopted."""
        if not self.has_legacy_files():
            return {}
        legacy = {kind: self.directory / name for kind, name in LEGACY_FILES.items()}
        adopted = {kind: VisualIndex.load(path) for kind, path in legacy.items() if path.exists()}
        for index in adopted.values():
            index.model = upgrade_model(index.model)
        if adopted:
            self.publish(**adopted)
        return adopted

    def _prune(self, keep: set[str]) -> None:
        for path in self.directory.glob("*.npz"):
            if path.name not in keep and path.name.split("-")[0].removesuffix(".npz") in KINDS:
                path.unlink(missing_ok=True)
