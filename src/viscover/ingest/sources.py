"""Where pins come from: a folder of images (subfolder = category, as in Caltech-101) or a manifest
(CSV or JSON Lines: image path or URL, optional id, description, boards, category)."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from viscover.errors import BadManifestError

MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
IMAGE_COLUMNS = ("image", "path", "url", "location", "file")
TEXT_COLUMNS = ("description", "text", "title")
CATEGORY_COLUMNS = ("category", "label", "class")


@dataclass(frozen=True)
class PinSource:
    """One image to ingest and the metadata that comes with it."""

    location: str
    pin_id: str | None = None
    description: str = ""
    boards: tuple[str, ...] = ()
    category: str | None = None


@dataclass(frozen=True)
class SourceError:
    """A manifest row that cannot become a pin: where it is and why."""

    where: str
    reason: str


def iter_sources(path: Path) -> Iterator[PinSource | SourceError]:
    """Pins described by a folder or a manifest file; whole-file problems raise BadManifestError."""
    if path.is_dir():
        yield from _iter_folder(path)
    elif path.is_file():
        kind = MANIFEST_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise BadManifestError(f"{path}: not a folder or a manifest (.csv, .jsonl)")
        yield from _iter_manifest(path, kind)
    else:
        raise BadManifestError(f"{path}: no such file or folder")


def _iter_folder(root: Path) -> Iterator[PinSource | SourceError]:
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        location = str(path.resolve())
        try:
            location.encode("utf-8")
        except UnicodeEncodeError:  # bytes Linux allows in a name but no catalog or terminal can hold as text
            shown = os.fsencode(location).decode("utf-8", "backslashreplace")
            yield SourceError(shown, "the file name is not valid UTF-8: rename the file")
            continue
        parts = path.relative_to(root).parts
        yield PinSource(location, category=parts[0] if len(parts) > 1 else None)


def _iter_manifest(path: Path, kind: str) -> Iterator[PinSource | SourceError]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadManifestError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise BadManifestError(f"{path}: cannot read manifest ({exc})") from exc
    if kind == "csv":
        reader = csv.DictReader(text.splitlines())
        columns = {c.strip().lower() for c in reader.fieldnames or ()}
        if not columns & set(IMAGE_COLUMNS):
            raise BadManifestError(f"{path}: no image column; expected one of {', '.join(IMAGE_COLUMNS)}")
        rows: Iterator[tuple[int, object]] = enumerate(reader, start=2)
    else:
        rows = ((n, _json_or_error(line)) for n, line in enumerate(text.splitlines(), 1) if line.strip())
    for line_no, row in rows:
        where = f"{path}:{line_no}"
        if isinstance(row, str):
            yield SourceError(where, row)
        elif not isinstance(row, dict):
            yield SourceError(where, "expected an object with an 'image' field")
        else:
            yield _row_to_source(row, path.parent, where)


def read_json_objects(path: Path, what: str) -> list[dict]:
    """Every line of a JSON-lines file of `what` as an object (blank lines skipped); an unreadable file or a
    line that is not an object raises BadManifestError naming the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadManifestError(f"cannot read {what} from {path}: {exc}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            row = _json_or_error(line)
            if not isinstance(row, dict):
                raise BadManifestError(f"{path}:{number}: {row if isinstance(row, str) else 'not a JSON object'}")
            rows.append(row)
    return rows


def _json_or_error(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return f"invalid JSON ({exc})"


def _row_to_source(row: dict, base: Path, where: str) -> PinSource | SourceError:
    row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    location = _first(row, IMAGE_COLUMNS)
    if not location:
        return SourceError(where, f"missing image; expected one of {', '.join(IMAGE_COLUMNS)}")
    if "\x00" in location:
        return SourceError(where, f"{location!r}: the image location holds a NUL byte, which no file name or URL can")
    if not location.startswith(("http://", "https://")) and not Path(location).is_absolute():
        location = str((base / location).resolve())
    boards = row.get("boards") or row.get("board") or ()
    if isinstance(boards, str):
        boards = [b for b in re.split(r"[;|,]", boards) if b.strip()]
    return PinSource(
        location=location,
        pin_id=_first(row, ("id", "pin_id")) or None,
        description=_first(row, TEXT_COLUMNS),
        boards=tuple(str(b).strip() for b in boards),
        category=_first(row, CATEGORY_COLUMNS) or None,
    )


def _first(row: dict, names: tuple[str, ...]) -> str:
    for name in names:
        value = row.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return ""
