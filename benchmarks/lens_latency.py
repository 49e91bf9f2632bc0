"""Latency of a Lens request on a benchmark home at 1 client, with each stage's share: decode, visual search with
annotations, detection with the dot filter, colours, text search, object search and the blend. Every source is
switched on, the text trigger is off and the dot filter asks only for the detector's score, so each request
runs every stage (object search once a detected object or a product shot asks for it). Baseline in the
same run: a plain visual search of the same photos.

Every request is a different photo of a scene (COCO and IKEA room photos in the home), so no answer comes from a
cache.

    python benchmarks/lens_latency.py --home /tmp/bench100k --out docs/results/lens-latency.md
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from serve_latency import SHARED, latency_table, timed, write_report

from viscover import BytesQuery, Searcher
from viscover.lens import Lens

TARGET = "target at 1 client: a Lens request p50 < 400 ms at 100k items"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=60, help="requests per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))
    rng = np.random.default_rng(args.seed)

    searcher = Searcher.open(
        args.home, lens_sources=["visual", "text", "object"], dot_min_conformity=0.0, lens_text_min_annotation=0.0
    )
    lens = Lens(searcher)
    scenes = [pin for pin in searcher.catalog if "/coco" in pin.location or "/rooms/" in pin.location]
    chosen = [scenes[i] for i in rng.choice(len(scenes), 2 * args.requests, replace=False)]
    photos = [Path(pin.location).read_bytes() for pin in chosen]
    snapshot = searcher.snapshot()
    print(
        f"home {args.home}: {len(searcher.catalog)} pins, {len(snapshot.visual.codes)} indexed, "
        f"{len(snapshot.objects.codes) if snapshot.objects else 0} objects indexed; "
        f"{args.requests - 2} timed requests per row"
    )

    results = []

    def look(data: bytes) -> None:
        results.append(lens.look(BytesQuery(data), 20))

    rows = {
        "visual search of the photo": timed([lambda d=d: searcher.search(BytesQuery(d), 20) for d in photos[::2]]),
        "Lens request (every source)": timed([lambda d=d: look(d) for d in photos[1::2]]),
    }
    stages: dict[str, list[float]] = defaultdict(list)
    fired: dict[str, int] = defaultdict(int)
    for result in results[2:]:  # the warm-up requests left out, as `timed` leaves them out
        for stage, seconds in result.seconds.items():
            stages[stage].append(seconds)
        for share in result.mix:
            fired[share.name] += share.fired
    total = sum(float(np.sum(times)) for times in stages.values())
    share_lines = ["| stage | mean ms | share of the request |", "|---|---|---|"]
    for stage, times in stages.items():
        share_lines.append(f"| {stage} | {np.mean(times) * 1000:.1f} | {np.sum(times) / total:.0%} |")
    runs = len(results) - 2
    note = "sources fired: " + ", ".join(f"{name} {count}/{runs}" for name, count in fired.items())
    note += f"; dot filter: detector score >= {lens.insight.thresholds.detector:g}"
    write_report(
        args.out, latency_table(rows, "visual search of the photo"), "\n".join(share_lines), f"{TARGET}; {note}"
    )


if __name__ == "__main__":
    main()
