"""Build a reusable benchmark home of N pins (default 100,000) for the service and product benchmarks.

How it is made:
1. **Real pins**: every image under ../shared/datasets (Caltech-101, fashion-small, ikea-rooms products and
   room photos, coco128, coco-mini train and val; about 16,600) is ingested with the text and boards its
   data set has: fashion-small's product name as description, article type as category, "gender article
   type" and "season usage" as boards; ikea-rooms' descriptions and product types, rooms as boards; COCO's
   first caption as description and most frequent object label as category; Caltech-101's class as
   category and board. Their real features are extracted (EfficientNet-Lite0 pool, the default).
2. **Objects**: the default detector runs on a seeded sample of `--object-pins` real pins (all room and
   COCO photos first), and their objects are indexed, as `viscover objects` does.
3. **Padding**: the catalog is filled up to N with perturbed copies of real pins. Copy c of a real pin
   (chosen uniformly at random, seeded) gets the real pin's image, text, boards and category, the id
   `<real id>~<c>`, a made-up SHA-256 of `<real sha256>:<c>`, and the feature vector of the real pin plus
   Gaussian noise of `--noise` (default 0.25) times each dimension's standard deviation over the real
   pins, so copies sit near, not on, their originals.
4. **Index**: the 256-bit ITQ binarizer is fitted on a seeded sample of 20,000 vectors
   (`VISCOVER_BINARIZER_SAMPLE`) and every pin is coded into the exact `BFlat` index.

    VISCOVER_MODELS_DIR=../shared/models python benchmarks/make_home.py --home /tmp/bench100k

The home records how it was made in `benchmark-home.json`. Rerunning on a finished home does nothing;
an interrupted build resumes (each step skips what is stored).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from viscover import Engine
from viscover.detect import load_dataset
from viscover.ingest import Pin
from viscover.search import index_objects

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATASETS = SHARED / "datasets"


def caltech() -> list[dict]:
    rows = []
    for path in sorted((DATASETS / "caltech101").glob("*/*.jpg")):
        category = path.parent.name
        rows.append(
            {
                "image": str(path),
                "id": f"caltech:{category}.{path.stem}",
                "description": category.replace("_", " "),
                "boards": [f"caltech {category}"],
                "category": category,
            }
        )
    return rows


def fashion() -> list[dict]:
    folder = DATASETS / "fashion-small"
    styles = {row["id"]: row for row in csv.DictReader((folder / "styles.csv").open(encoding="utf-8"))}
    rows = []
    for path in sorted((folder / "images").glob("*.jpg")):
        style = styles.get(path.stem, {})
        boards = [
            f"{style.get('gender', '')} {style.get('articleType', '')}".strip(),
            f"{style.get('season', '')} {style.get('usage', '')}".strip(),
        ]
        rows.append(
            {
                "image": str(path),
                "id": f"fashion:{path.stem}",
                "description": style.get("productDisplayName", ""),
                "boards": [b for b in boards if b],
                "category": style.get("articleType") or None,
            }
        )
    return rows


def ikea() -> list[dict]:
    folder = DATASETS / "ikea-rooms"
    rows = []
    for line in (folder / "products.jsonl").read_text().splitlines():
        product = json.loads(line)
        rows.append(
            {
                "image": str(folder / product["image"]),
                "id": f"ikea:{product['id']}",
                "description": product["description"],
                "boards": product["boards"],
                "category": product["category"],
            }
        )
    for line in (folder / "rooms.jsonl").read_text().splitlines():
        room = json.loads(line)
        if room["image"]:
            rows.append(
                {
                    "image": str(folder / room["image"]),
                    "id": f"room:{room['room']}",
                    "description": f"{room['type'] or 'IKEA'} room: "
                    + room["room"].removeprefix("ikea-").replace("-", " "),
                    "boards": [room["room"]],
                    "category": room["type"] or "Room",
                }
            )
    return rows


def coco() -> list[dict]:
    captions: dict[str, str] = {}
    for split in ("train2017", "val2017"):
        data = json.loads((DATASETS / "coco-mini" / "annotations" / f"captions_{split}.json").read_text())
        names = {image["id"]: image["file_name"] for image in data["images"]}
        for caption in data["annotations"]:
            captions.setdefault(names[caption["image_id"]], caption["caption"].strip())
    rows = []
    for source, folder, split in (
        ("coco-mini", DATASETS / "coco-mini", "train"),
        ("coco-mini", DATASETS / "coco-mini", "val"),
        ("coco128", DATASETS / "coco128", "val"),
    ):
        labelled = {item.path.name: item.labels for item in load_dataset(folder, split).images}
        for path in sorted(folder.glob(f"**/{split}2017/*.jpg")):
            labels = labelled.get(path.name, ())
            common = Counter(labels).most_common(1)
            rows.append(
                {
                    "image": str(path),
                    "id": f"{source}:{path.stem}",
                    "description": captions.get(path.name)
                    or ("a scene with " + ", ".join(sorted(set(labels))) if labels else ""),
                    "boards": [source],
                    "category": common[0][0] if common else None,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--object-pins", type=int, default=2000, help="real pins the detector runs on")
    parser.add_argument("--noise", type=float, default=0.25, help="copies' noise, in per-dimension std")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)

    manifest = args.home.parent / f"{args.home.name}-manifest.jsonl"
    rows = caltech() + fashion() + ikea() + coco()
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with Engine.open(args.home) as engine:
        print(f"1. ingest {len(rows)} real images: {engine.ingest(manifest).summary()}")
        report = engine.index()
        speed = f"{report.images_per_second:.0f} img/s"
        print(f"   index: {report.extracted} extracted at {speed}, {len(report.failures)} failed")
        real = [pin for pin in engine.catalog if "~" not in pin.pin_id]

        photos = [p.key for p in real if p.pin_id.startswith(("room:", "coco"))]
        others = [p.key for p in real if not p.pin_id.startswith(("room:", "coco"))]
        chosen = photos + rng.choice(others, max(0, args.object_pins - len(photos)), replace=False).tolist()
        objects = index_objects(engine, only=set(chosen[: args.object_pins]))
        print(f"2. objects: {objects.pins} pins detected, {objects.objects} objects, {objects.indexed} indexed")

        model = engine.feature_key
        real_keys, real_vectors = engine.catalog.features(model, [p.key for p in real])
        by_key = {p.key: p for p in real}
        spread = real_vectors.std(axis=0) * args.noise
        # an interrupted padding may have stored copies without their features: they go, and are made again
        unfinished = [p.pin_id for p in engine.catalog.pins_without_features(model) if "~" in p.pin_id]
        if unfinished:
            engine.delete(unfinished)
        missing = args.items - len(engine.catalog)
        print(f"3. padding with {max(missing, 0)} perturbed copies (noise {args.noise} x per-dimension std)")
        with engine.writing():
            copies = rng.integers(0, len(real_keys), max(missing, 0))
            batch_keys, batch_vectors = [], []
            for number, row in enumerate(tqdm(copies, unit="pin", desc="copies"), start=len(engine.catalog)):
                original = by_key[int(real_keys[row])]
                pin, _ = engine.catalog.add(
                    Pin(
                        f"{original.pin_id}~{number}",
                        original.location,
                        hashlib.sha256(f"{original.sha256}:{number}".encode()).hexdigest(),
                        original.width,
                        original.height,
                        original.description,
                        original.boards,
                        original.category,
                    )
                )
                batch_keys.append(pin.key)
                batch_vectors.append(real_vectors[row] + rng.normal(0, 1, spread.shape).astype(np.float32) * spread)
                if len(batch_keys) == 2048:
                    engine.catalog.put_features(model, batch_keys, np.stack(batch_vectors))
                    batch_keys, batch_vectors = [], []
            if batch_keys:
                engine.catalog.put_features(model, batch_keys, np.stack(batch_vectors))
        report = engine.index()
        print(f"4. index: {report.indexed} pins, {report.bits}-bit, rebuilt {report.rebuilt}")
        (args.home / "benchmark-home.json").write_text(
            json.dumps(
                {
                    "command": "python " + " ".join(sys.argv),
                    "items": len(engine.catalog),
                    "real": len(real),
                    "object_pins": objects.pins,
                    "objects": objects.indexed,
                    "noise": args.noise,
                    "seed": args.seed,
                    "model": model,
                    "seconds": round(time.perf_counter() - started),
                },
                indent=1,
            )
        )
    print(f"done in {time.perf_counter() - started:.0f} s: {args.home}")


if __name__ == "__main__":
    main()
