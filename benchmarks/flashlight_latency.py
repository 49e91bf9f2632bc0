"""Latency of Flashlight on a benchmark home at 1 client: plain crop search, crop search with annotations, and a
dots request (detect + one batched search of every box + the three signals), in-process and over HTTP, in one run.

Every request is a different query (distinct real images, distinct random crops), so no answer comes from a
cache. The server runs in its own process with one thread per search call (the default), dots switched on.

    python benchmarks/flashlight_latency.py --home /tmp/bench100k --out docs/results/flashlight-latency.md
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import httpx
import numpy as np
from serve_latency import SHARED, latency_table, served, timed, write_report

from viscover import Box, BytesQuery, Searcher
from viscover.flashlight import Flashlight

TARGETS = "targets at 1 client: crop search with annotations p50 < 80 ms; dots request p50 < 250 ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=100, help="requests per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))
    os.environ["VISCOVER_DOTS"] = "true"  # the server's and this process's
    rng = np.random.default_rng(args.seed)

    searcher = Searcher.open(args.home)  # opening migrates an older home (pin terms are backfilled once)
    flashlight = Flashlight(searcher)
    real = [pin for pin in searcher.catalog if "~" not in pin.pin_id and pin.location.endswith(".jpg")]
    count = 2 * args.requests  # distinct queries in-process and over HTTP
    pins = [real[i] for i in rng.choice(len(real), count, replace=False)]
    images = [Path(pin.location).read_bytes() for pin in pins]
    crops = []
    for pin in pins:
        w, h = (rng.uniform(0.4, 0.8) * side for side in (pin.width, pin.height))
        x, y = rng.uniform(0, pin.width - w), rng.uniform(0, pin.height - h)
        crops.append(Box.from_xywh(int(x), int(y), int(w), int(h)))
    # dots are for photos of scenes: COCO photos and IKEA room photos, where the detector finds several objects
    scenes = [pin for pin in real if "/coco" in pin.location or "/rooms/" in pin.location]
    scene_images = [Path(scenes[i].location).read_bytes() for i in rng.choice(len(scenes), count, replace=False)]
    here, there = slice(0, args.requests), slice(args.requests, count)
    snapshot = searcher.snapshot()
    print(
        f"home {args.home}: {len(searcher.catalog)} pins, {len(snapshot.visual.codes)} indexed, "
        f"{snapshot.visual.bits}-bit {snapshot.visual.codes.spec}; {args.requests - 2} timed requests per row"
    )

    found_dots: list[int] = []

    def dots(data: bytes) -> None:
        found_dots.append(len(flashlight.dots(BytesQuery(data))))

    rows = {
        "plain crop search (in-process)": timed(
            [
                lambda d=d, c=c: searcher.search(BytesQuery(d, c), 20)
                for d, c in zip(images[here], crops[here], strict=True)
            ]
        ),
        "crop search + annotations (in-process)": timed(
            [
                lambda d=d, c=c: flashlight.look(BytesQuery(d, c), 20)
                for d, c in zip(images[here], crops[here], strict=True)
            ]
        ),
        "dots of a scene photo (in-process)": timed([lambda d=d: dots(d) for d in scene_images[here]]),
    }

    with served(args.home) as (url, _), httpx.Client(base_url=url, timeout=60) as session:

        def post(path: str, data: bytes, form: dict) -> None:
            session.post(path, data=form, files={"image": ("q.jpg", data, "image/jpeg")}).raise_for_status()

        pairs = list(zip(images[there], crops[there], strict=True))
        rows["POST /v1/search, a crop (results + annotations)"] = timed(
            [lambda d=d, c=c: post("/v1/search", d, {"crop": str(c)}) for d, c in pairs]
        )
        rows["POST /v1/flashlight, a scene photo (results + annotations + dots)"] = timed(
            [lambda d=d: post("/v1/flashlight", d, {}) for d in scene_images[there]]
        )

    least = flashlight.thresholds.detector
    note = f"boxes searched per scene photo (detector score >= {least:g}, the dot threshold): "
    note += f"mean {np.mean(found_dots):.1f}"
    write_report(args.out, latency_table(rows, "plain crop search (in-process)"), f"{TARGETS}; {note}")


if __name__ == "__main__":
    main()
