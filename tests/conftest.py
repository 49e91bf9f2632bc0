"""Fixtures that build small real data: Caltech-101 images copied from ../shared, real pretrained models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from viscover import Engine

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CALTECH = SHARED / "datasets" / "caltech101"
CLASSES = ("accordion", "airplanes", "Leopards", "Motorbikes", "pagoda")
PER_CLASS = 6


@pytest.fixture(scope="session", autouse=True)
def _shared_model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One ONNX export for the whole run, instead of one per test home."""
    os.environ["VISCOVER_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["VISCOVER_MODELS_DIR"] = str(SHARED / "models")
    os.environ["VISCOVER_ALLOW_DOWNLOAD"] = "0"


def caltech_image(category: str, number: int) -> Path:
    return CALTECH / category / f"image_{number:04d}.jpg"


@pytest.fixture(scope="session")
def caltech_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder-per-class catalog: the first PER_CLASS images of a few Caltech-101 classes."""
    if not CALTECH.is_dir():
        pytest.fail(f"test data missing: {CALTECH} (../shared must sit beside the checkout)")
    root = tmp_path_factory.mktemp("caltech")
    for category in CLASSES:
        (root / category).mkdir()
        for number in range(1, PER_CLASS + 1):
            shutil.copy(caltech_image(category, number), root / category)
    return root


@pytest.fixture(scope="session")
def indexed_home(caltech_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the subset ingested and indexed once (tests that modify it copy it first)."""
    home = tmp_path_factory.mktemp("home")
    with Engine.open(home) as engine:
        engine.ingest(caltech_subset, progress=False)
        engine.index(progress=False)
    return home


@pytest.fixture
def engine(indexed_home: Path, tmp_path: Path) -> Engine:
    """A private, writable copy of the indexed home."""
    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)
    with Engine.open(home) as opened:
        yield opened


COCO_MINI = SHARED / "datasets" / "coco-mini"
COCO128 = SHARED / "datasets" / "coco128"


def coco_val_image(number: int) -> Path:
    return COCO_MINI / "val2017" / f"{number:012d}.jpg"


@pytest.fixture(scope="session")
def coco_val_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO-json dataset of the first 4 annotated coco-mini val images (real boxes, real pictures)."""
    data = json.loads((COCO_MINI / "annotations" / "instances_val2017.json").read_text())
    annotated = sorted({a["image_id"] for a in data["annotations"]})[:4]
    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    (root / "val2017").mkdir()
    images = [i for i in data["images"] if i["id"] in annotated]
    for image in images:
        shutil.copy(COCO_MINI / "val2017" / image["file_name"], root / "val2017")
    subset = {
        "images": images,
        "annotations": [a for a in data["annotations"] if a["image_id"] in annotated],
        "categories": data["categories"],
    }
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(subset))
    return root


IKEA = SHARED / "datasets" / "ikea-rooms"
IKEA_ROOMS = 16  # the first rooms of ikea-rooms: their products, saved to them as boards


def ikea_manifest(folder: Path, rooms: int = IKEA_ROOMS) -> tuple[Path, list[dict]]:
    """A manifest of the products of the first `rooms` rooms, each saved to those of its rooms that are in it,
    plus one product of a later room saved to none (a cold pin); returns it and the rooms."""
    room_rows = [json.loads(line) for line in (IKEA / "rooms.jsonl").read_text().splitlines()][:rooms]
    chosen = {room["room"] for room in room_rows}
    wanted = {product for room in room_rows for product in room["products"]}
    lines = []
    for line in (IKEA / "products.jsonl").read_text().splitlines():
        row = json.loads(line)
        boards = [board for board in row["boards"] if board in chosen]
        if row["id"] in wanted or (not boards and not any(r.get("boards") == [] for r in lines)):
            lines.append({**row, "image": str(IKEA / row["image"]), "boards": boards})
    manifest = folder / "ikea.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in lines))
    return manifest, room_rows


@pytest.fixture(scope="session")
def ikea_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home of ikea-rooms products with rooms as boards, indexed, objects detected, and the Related Pins
    ranker trained (tests that modify it copy it first)."""
    from viscover.related.train import train_home
    from viscover.search import index_objects

    if not IKEA.is_dir():
        pytest.fail(f"test data missing: {IKEA} (../shared must sit beside the checkout)")
    home = tmp_path_factory.mktemp("ikea-home")
    manifest, _ = ikea_manifest(tmp_path_factory.mktemp("ikea"))
    with Engine.open(home, object_windows=False) as engine:  # Related Pins needs dominant objects, not windows
        engine.ingest(manifest, progress=False)
        engine.index(progress=False)
        index_objects(engine, progress=False)
        train_home(engine, board_types=IKEA / "rooms.jsonl", progress=False)
    return home


@pytest.fixture(scope="session")
def lens_home(caltech_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Caltech subset plus twelve COCO scenes (category "scenes"), indexed, with every pin's objects detected
    and indexed, so each Lens source has something to find (tests that modify it copy it first)."""
    from viscover.search import index_objects

    root = tmp_path_factory.mktemp("lens-catalog")
    shutil.copytree(caltech_subset, root, dirs_exist_ok=True)
    (root / "scenes").mkdir()
    for path in sorted((COCO_MINI / "val2017").glob("*.jpg"))[:12]:
        shutil.copy(path, root / "scenes")
    home = tmp_path_factory.mktemp("lens-home")
    with Engine.open(home) as engine:
        engine.ingest(root, progress=False)
        engine.index(progress=False)
        index_objects(engine, progress=False)
    return home
