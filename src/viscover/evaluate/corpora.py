"""The evaluation corpora with text (fashion-small, ikea-rooms) as items, split by the unit that leaks, and a
home built (or reused) for a split's catalog. Flashlight's and Lens's evaluations share them."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viscover.config import Settings
from viscover.errors import BadArgumentError
from viscover.evaluate.workhome import evaluation_settings, ingest_rows
from viscover.search import Engine


@dataclass(frozen=True)
class Item:
    """A catalog item: its text, and the units that would leak it (product name, rooms)."""

    pin_id: str
    image: str
    description: str
    category: str | None
    boards: tuple[str, ...] = ()
    units: tuple[str, ...] = ()


def fashion_items(folder: Path) -> list[Item]:
    """fashion-small: the product name as description, the article type as category; unit: the product name
    without its colour words, so one product's colour variants fall on the same side of a split."""
    items = []
    with (folder / "styles.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            image = folder / "images" / f"{row['id']}.jpg"
            name = (row.get("productDisplayName") or "").strip()
            if image.is_file() and name:
                colour = set((row.get("baseColour") or "").lower().split())
                product = " ".join(word for word in name.lower().split() if word not in colour)
                items.append(Item(row["id"], str(image), name, row.get("articleType") or None, (), (product,)))
    return items


def ikea_items(folder: Path) -> list[Item]:
    """ikea-rooms: IKEA's descriptions and product types, rooms as boards; units: the rooms."""
    items = []
    for line in (folder / "products.jsonl").read_text().splitlines():
        row = json.loads(line)
        boards = tuple(row.get("boards") or ())
        image = str((folder / row["image"]).resolve())
        items.append(Item(row["id"], image, row.get("description") or "", row.get("category"), boards, boards))
    return items


CORPORA: dict[str, tuple[str, Callable[[Path], list[Item]]]] = {
    "fashion-small": ("styles.csv", fashion_items),
    "ikea-rooms": ("products.jsonl", ikea_items),
}


def load_items(folder: Path) -> tuple[str, list[Item]]:
    """The data set's name and items, recognised by its files."""
    for name, (marker, read) in CORPORA.items():
        if (folder / marker).is_file():
            return name, read(folder)
    known = ", ".join(f"{name} ({marker})" for name, (marker, _) in CORPORA.items())
    raise BadArgumentError(f"{folder}: not a data set eval annotations knows; expected one of {known}")


@dataclass(frozen=True)
class Split:
    catalog: list[Item]
    dev: list[Item]
    test: list[Item]


def split_items(items: Sequence[Item], holdout: float, seed: int) -> Split:
    """Hold out a seeded share of the units, half for dev and half for test. An item whose units all fall in
    one half is a query there; only items touching no held-out unit make the catalog; items touching both
    halves, or a held-out unit and a kept one, are left out of both (a held-out room's products, its
    roommates, never reach the catalog)."""
    if not 0 < holdout < 1:
        raise BadArgumentError(f"--holdout must be between 0 and 1, got {holdout}")
    units = sorted({unit for item in items for unit in item.units})
    order = np.random.default_rng(seed).permutation(len(units))
    held = [units[i] for i in order[: max(2, round(holdout * len(units)))]]
    dev_units, test_units = set(held[::2]), set(held[1::2])
    catalog, dev, test = [], [], []
    for item in items:
        mine = set(item.units)
        if mine and mine <= dev_units:
            dev.append(item)
        elif mine and mine <= test_units:
            test.append(item)
        elif not mine & (dev_units | test_units):
            catalog.append(item)
    return Split(catalog, dev, test)


def open_catalog(name: str, split: Split, settings: Settings, work: Path, progress: bool) -> Engine:
    """An engine over the split's catalog, in a home under `work` named by its pins: built once, then reused
    (by every evaluation that splits the same way)."""
    digest = hashlib.sha256("\n".join(item.pin_id for item in split.catalog).encode()).hexdigest()[:10]
    engine = Engine(evaluation_settings(settings, work / f"{name}-{digest}"))
    rows = [
        {
            "id": item.pin_id,
            "image": item.image,
            "description": item.description,
            "category": item.category,
            "boards": list(item.boards),
        }
        for item in split.catalog
    ]
    ingest_rows(engine, rows, progress)
    return engine
