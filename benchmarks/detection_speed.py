"""Detector latency (one image at a time, decoded image in, boxes out) and throughput over real COCO val
images, every detector against the first one (the baseline) in the same run.

    python benchmarks/detection_speed.py --detectors ssd_mobilenet_v1_coco,yolox_nano,nanodet_m --images 100

Model files come from VISCOVER_MODELS_DIR (default here: ../shared/models).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from viscover.config import Settings
from viscover.detect import create_detector

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detectors", default="ssd_mobilenet_v1_coco,yolox_nano,nanodet_m")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=SHARED / "datasets" / "coco128" / "images" / "val2017")
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))

    images = [Image.open(p).convert("RGB") for p in sorted(args.folder.glob("*.jpg"))[: args.images]]
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for name in args.detectors.split(","):
            detector = create_detector(name, Settings(home=Path(home)))
            detector.detect(images[0])  # warm-up
            seconds = []
            start = time.perf_counter()
            for image in images:
                t = time.perf_counter()
                detector.detect(image)
                seconds.append(time.perf_counter() - t)
            rows.append((name, 1000 * float(np.median(seconds)), len(images) / (time.perf_counter() - start)))
    base = rows[0][1]
    print(f"{len(images)} images from {args.folder}, {os.cpu_count()} CPU cores")
    print(f"{'detector':<24} {'median ms':>10} {'img/s':>8} {'latency vs ' + rows[0][0]:>34}")
    for name, ms, rate in rows:
        print(f"{name:<24} {ms:>10.1f} {rate:>8.1f} {ms / base:>33.2f}x")


if __name__ == "__main__":
    main()
