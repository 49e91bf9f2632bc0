"""Detection datasets in the three formats people have: COCO json, Pascal-VOC xml and YOLO txt.

Each loads into one record type (`AnnotatedImage`: a path, boxes in pixels, label names) so evaluation
and training never see the format.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from viscover.errors import ViscoverError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class BadDatasetError(ViscoverError):
    """A detection dataset that cannot be read or holds nothing to use."""


@dataclass(frozen=True)
class AnnotatedImage:
    """One image and its ground-truth objects; `crowd` marks COCO crowd regions (neither hit nor miss)."""

    path: Path
    boxes: np.ndarray  # (N, 4) float x0, y0, x1, y1 in pixels
    labels: tuple[str, ...]
    crowd: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        if len(self.crowd) != len(self.labels):
            object.__setattr__(self, "crowd", np.zeros(len(self.labels), dtype=bool))


@dataclass(frozen=True)
class DetectionDataset:
    name: str
    classes: tuple[str, ...]
    images: list[AnnotatedImage]

    def __len__(self) -> int:
        return len(self.images)


def load_dataset(path: Path, split: str = "val") -> DetectionDataset:
    """Read a COCO (instances_*.json), VOC (Annotations/*.xml) or YOLO (labels/*.txt + yaml) dataset;
    `split` picks train or val files by name (e.g. "val" matches instances_val2017.json)."""
    path = Path(path)
    if not path.exists():
        raise BadDatasetError(f"dataset {path} does not exist")
    if path.suffix == ".json":
        dataset = _coco(path, path.parent)
    elif coco := sorted(path.glob(f"**/instances_{split}*.json")):
        dataset = _coco(coco[0], path)
    elif (path / "Annotations").is_dir():
        dataset = _voc(path, split)
    elif labels := sorted(p for p in path.glob(f"**/labels/{split}*") if p.is_dir()):
        dataset = _yolo(path, labels[0])
    else:
        raise BadDatasetError(
            f"{path}: no COCO annotations (instances_{split}*.json), VOC Annotations/ folder or YOLO "
            f"labels/{split}*/ folder found"
        )
    if not dataset.images:
        raise BadDatasetError(f"dataset {path} (split {split!r}) has no images")
    return dataset


def _coco(annotations: Path, root: Path) -> DetectionDataset:
    try:
        data = json.loads(annotations.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        files = {image["id"]: image["file_name"] for image in data["images"]}
        objects: dict[int, list[tuple[list[float], str, bool]]] = {i: [] for i in files}
        for a in data["annotations"]:
            x, y, w, h = a["bbox"]
            objects[a["image_id"]].append(([x, y, x + w, y + h], names[a["category_id"]], bool(a.get("iscrowd"))))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadDatasetError(f"{annotations} is not a COCO instances file: {exc}") from exc
    split = annotations.stem.removeprefix("instances_")  # instances_val2017.json → images in val2017/
    folder = next((d for d in (root / split, root / "images" / split, root) if d.is_dir()), root)
    images = [
        AnnotatedImage(
            folder / files[i],
            np.array([o[0] for o in objs], dtype=np.float64).reshape(-1, 4),
            tuple(o[1] for o in objs),
            np.array([o[2] for o in objs], dtype=bool),
        )
        for i, objs in sorted(objects.items())
    ]
    return DetectionDataset(f"{root.name}-{split}", tuple(names.values()), images)


def _voc(root: Path, split: str) -> DetectionDataset:
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    xmls = (
        [root / "Annotations" / f"{line.strip()}.xml" for line in listing.read_text().splitlines() if line.strip()]
        if listing.is_file()
        else sorted((root / "Annotations").glob("*.xml"))
    )
    images, classes = [], {}
    for xml in xmls:
        try:
            tree = ET.parse(xml).getroot()
            boxes, labels = [], []
            for obj in tree.iter("object"):
                bb = obj.find("bndbox")
                boxes.append([float(bb.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")])
                labels.append(obj.find("name").text.strip())
            filename = tree.findtext("filename")
        except (ET.ParseError, AttributeError, ValueError, OSError) as exc:
            raise BadDatasetError(f"{xml} is not a Pascal-VOC annotation: {exc}") from exc
        classes.update(dict.fromkeys(labels))
        image = root / "JPEGImages" / (filename or f"{xml.stem}.jpg")
        images.append(AnnotatedImage(image, np.array(boxes, dtype=np.float64).reshape(-1, 4), tuple(labels)))
    return DetectionDataset(f"{root.name}-{split}", tuple(sorted(classes)), images)


def _yolo(root: Path, labels_dir: Path) -> DetectionDataset:
    configs = sorted(root.glob("**/*.yaml"))
    try:
        names = yaml.safe_load(configs[0].read_text())["names"] if configs else None
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise BadDatasetError(f"{configs[0]} is not a YOLO data config with `names`: {exc}") from exc
    if names is None:
        raise BadDatasetError(f"{root}: a YOLO dataset needs a .yaml config with class `names`")
    classes = tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)
    candidates = [p for p in root.glob(f"**/images/{labels_dir.name}") if p.is_dir()]
    image_dir = candidates[0] if candidates else labels_dir.parent.parent / "images" / labels_dir.name
    images = []
    for image_path in sorted(p for p in image_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        label_file = labels_dir / f"{image_path.stem}.txt"
        rows = (
            np.loadtxt(label_file, ndmin=2) if label_file.is_file() and label_file.stat().st_size else np.zeros((0, 5))
        )
        if rows.shape[1] < 5:
            raise BadDatasetError(f"{label_file}: YOLO rows need class cx cy w h")
        with Image.open(image_path) as im:
            width, height = im.size
        cx, cy, w, h = (rows[:, i] for i in range(1, 5))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * [width, height, width, height]
        try:
            labels = tuple(classes[int(c)] for c in rows[:, 0])
        except IndexError:
            raise BadDatasetError(f"{label_file}: class id outside the {len(classes)} names") from None
        images.append(AnnotatedImage(image_path, boxes, labels))
    return DetectionDataset(f"{root.name}-{labels_dir.name}", classes, images)
