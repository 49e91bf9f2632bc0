"""Recall and speed of approximate binary indexes (`BIVF…`, `BHNSW…`) against exact search (`BFlat`) on real
codes, over the search breadth settings (`VISCOVER_INDEX_NPROBE`, `VISCOVER_INDEX_EF_SEARCH`).

Codes, exactly:
1. The EfficientNet-Lite0 pool features of every real image of a benchmark home (`make_home.py`: all ~16,500
   images under ../shared), ITQ-binarized to 256 bits (fitted on those features).
2. `--queries` real images (seeded) are held out: their codes are the queries; none of them, nor any copy of
   them, is in the database.
3. The database: copies of the other real codes, round-robin, each copy with every bit flipped independently
   with probability `--flip` (default 0.05: about 13 of 256 bits), until it holds N codes. The copies of one
   image cluster around it as near-duplicates and re-encodings of one photo do in a real catalog; a query's
   neighbours are copies of the real images nearest to it.

Recall@10: the share of an index's top 10 that lie within the exact 10th distance (ties count as found).
Speed: queries a second on one thread over the held-out queries (the fastest of 3 passes), against exact
search in the same run.

    python benchmarks/approximate_recall.py --home /tmp/bench100k --sizes 1000000 --out docs/results/cluster.md
    python benchmarks/approximate_recall.py --home /tmp/bench100k --sizes 10000000 --no-hnsw --out ...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from serve_latency import append_report

from viscover import Engine
from viscover.features import Binarizer
from viscover.index import VectorIndex
from viscover.threads import limit_threads

K = 10
CHUNK = 1_000_000  # codes made and added at a time


def real_codes(home: Path, seed: int) -> np.ndarray:
    """ITQ codes of the home's real pins (ids without '~'), in key order."""
    with Engine.open(home) as engine:
        keys = [pin.key for pin in engine.catalog if "~" not in pin.pin_id]
        _, vectors = engine.catalog.features(engine.feature_key, keys)
    sample = vectors[np.random.default_rng(seed).permutation(len(vectors))[:20_000]]
    return Binarizer("itq", 256).fit(sample).transform(vectors)


def flipped(codes: np.ndarray, rows: np.ndarray, flip: float, rng: np.random.Generator) -> np.ndarray:
    """Copies of `codes[rows]` with each bit flipped with probability `flip`."""
    bits = np.unpackbits(codes[rows], axis=1)
    bits ^= (rng.random(bits.shape) < flip).astype(np.uint8)
    return np.packbits(bits, axis=1)


def fill(index: VectorIndex, base: np.ndarray, size: int, flip: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for start in range(0, size, CHUNK):
        count = min(CHUNK, size - start)
        rows = np.arange(start, start + count) % len(base)
        index.add(np.arange(start, start + count, dtype=np.int64), flipped(base, rows, flip, rng))


def recall(found: np.ndarray, exact_distances: np.ndarray) -> float:
    """Share of `found` distances within each query's exact K-th distance."""
    return float((found <= exact_distances[:, K - 1 : K]).mean())


def timed(index: VectorIndex, queries: np.ndarray, passes: int = 3) -> tuple[np.ndarray, float]:
    """(distances, queries a second) of searching `queries` one at a time on one thread, in the fastest of
    `passes` passes (two shared cores make single passes vary by up to 2x)."""
    limit_threads(1)
    found = np.empty((len(queries), K), dtype=np.float32)
    fastest = np.inf
    for _ in range(passes):
        start = time.perf_counter()
        for row, query in enumerate(queries):
            found[row] = index.search(query[None], K)[0][0]
        fastest = min(fastest, time.perf_counter() - start)
    return found, len(queries) / fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a benchmark home (make_home.py)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--hnsw", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()

    codes = real_codes(args.home, args.seed)
    order = np.random.default_rng(args.seed).permutation(len(codes))
    queries, base = codes[order[: args.queries]], codes[order[args.queries :]]
    originals = VectorIndex.create("BFlat", "hamming", 256)
    originals.add(np.arange(len(base)), base)
    nearest = np.median(originals.search(queries, 1)[0])
    print(f"{len(codes)} real codes; {len(queries)} held out as queries; {len(base)} copied into the database")
    print(f"median distance from a query to its nearest real code: {nearest:.0f} bits of 256")
    lines = [
        f"\n### {', '.join(f'{n:,}' for n in args.sizes)} codes: {len(base):,} real codes copied with bit flips "
        f"(p = {args.flip}), {len(queries):,} held-out real queries (median distance to the nearest real code "
        f"{nearest:.0f} bits), one thread\n",
        "| codes | index | breadth | recall@10 | queries/s | speed-up vs exact | build s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]

    def row(size: int, spec: str, breadth: str, found: np.ndarray, qps: float, build: float) -> None:
        text = (
            f"| {size:,} | {spec} | {breadth} | {recall(found, exact):.3f} | {qps:,.0f} | "
            f"{qps / exact_qps:.1f}x | {build:.0f} |"
        )
        print(text, flush=True)
        lines.append(text)

    for size in args.sizes:
        lists = 1 << round(np.log2(np.sqrt(size)))  # about √N lists, a power of two
        specs = [f"BIVF{lists}", *(["BHNSW32"] if args.hnsw else [])]
        start = time.perf_counter()
        flat = VectorIndex.create("BFlat", "hamming", 256)
        fill(flat, base, size, args.flip, args.seed)
        exact, exact_qps = timed(flat, queries)
        row(size, "BFlat", "exact", exact, exact_qps, time.perf_counter() - start)
        del flat
        for spec in specs:
            limit_threads(2)  # building uses both cores; searching is timed on one
            start = time.perf_counter()
            index = VectorIndex.create(spec, "hamming", 256)
            learn_from = np.arange(50 * lists) % len(base)  # 50 codes a list, copies as the database's are
            index.train(flipped(base, learn_from, args.flip, np.random.default_rng(1)))
            fill(index, base, size, args.flip, args.seed)
            build = time.perf_counter() - start
            breadths = args.nprobe if spec.startswith("BIVF") else args.ef_search
            for breadth in breadths:
                index.tune(nprobe=breadth, ef_search=breadth)
                found, qps = timed(index, queries)
                name = "nprobe" if spec.startswith("BIVF") else "efSearch"
                row(size, spec, f"{name} {breadth}", found, qps, build)
            del index
    append_report(args.out, lines)


if __name__ == "__main__":
    main()
