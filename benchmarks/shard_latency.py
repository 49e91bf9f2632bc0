"""Exact search latency of one in-process index against the same codes split into 1, 2 and 4 shards served by
Ray actors (`viscover serve --cluster`), at 1M and 10M 256-bit codes, and the memory an index takes per 1M
codes.

Codes are seeded random 256-bit codes: exact search (`BFlat`) costs the same whatever the codes hold. Each
query is one search of k=10, one at a time, from this process: the single index on one FAISS thread, as the
serving path searches; the shards through `RayShardedIndex.search`, which sends the query to every shard
server at once and merges their answers. 1 shard on Ray measures the scatter-gather overhead alone. On this
2-core machine, 4 shard servers share 2 cores, so the numbers show overhead, not speed-up. Each split is built
as `viscover shard --ray` builds it, and timed: the codes land as Parquet by shard, then a Ray task per shard
builds its file from its partition.

    python benchmarks/shard_latency.py --sizes 1000000 10000000 --out docs/results/cluster.md
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
from serve_latency import append_report

from viscover.distributed import connect, run_on_ray, serve_shards
from viscover.features import Binarizer
from viscover.index import VectorIndex, VisualIndex
from viscover.index.shards import land_codes, write_shards
from viscover.threads import limit_threads

CHUNK = 1_000_000


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def latencies(search, queries: np.ndarray, warm: int = 10) -> np.ndarray:
    """Milliseconds of each query after `warm` unmeasured ones."""
    for query in queries[:warm]:
        search(query[None])
    times = []
    for query in queries[warm:]:
        start = time.perf_counter()
        search(query[None])
        times.append((time.perf_counter() - start) * 1000)
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--queries", type=int, default=210)
    parser.add_argument("--out", type=Path, help="append the tables to this Markdown file")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    queries = rng.integers(0, 256, (args.queries, 32), dtype=np.uint8)
    binarizer = Binarizer("sign", None).fit(rng.normal(size=(16, 256)).astype(np.float32))
    connect(None)  # a local Ray on this machine
    lines = [
        "\n| codes | where | p50 ms | p99 ms | p50 over the single index |",
        "|---:|---|---:|---:|---:|",
    ]
    memory, builds = [], []
    for size in args.sizes:
        limit_threads(1)
        before = resident_bytes()
        codes = VectorIndex.create("BFlat", "hamming", 256)
        for start in range(0, size, CHUNK):
            count = min(CHUNK, size - start)
            chunk = np.random.default_rng(start).integers(0, 256, (count, 32), dtype=np.uint8)
            codes.add(np.arange(start, start + count, dtype=np.int64), chunk)
        grown = resident_bytes() - before
        memory.append(f"| {size:,} | {grown / size * 1e6 / 2**20:.1f} MiB |")
        single = latencies(lambda q, index=codes: index.search(q, 10), queries)
        rows = [("one index, this process", single)]
        folder = Path(tempfile.mkdtemp(prefix="viscover-shards-"))
        try:
            for shards in args.shards:
                index = VisualIndex("random", binarizer, codes, size)
                start = time.perf_counter()
                landing = land_codes(index, folder / f"codes-{shards}", shards)
                landed = time.perf_counter()
                write_shards(index, landing, folder / str(shards), run_on_ray)
                built = time.perf_counter()
                builds.append(f"| {size:,} | {shards} | {landed - start:.2f} s | {built - landed:.2f} s |")
                served = serve_shards(folder / str(shards)).codes
                rows.append(
                    (
                        f"{shards} shard{'s' if shards > 1 else ''} on Ray",
                        latencies(lambda q, index=served: index.search(q, 10), queries),
                    )
                )
                for server in served.servers:
                    ray.kill(server)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        base = np.percentile(single, 50)
        for where, times in rows:
            p50, p99 = np.percentile(times, [50, 99])
            line = f"| {size:,} | {where} | {p50:.2f} | {p99:.2f} | {p50 - base:+.2f} ms |"
            print(line, flush=True)
            lines.append(line)
        del codes
    lines += ["", "| codes | resident memory per 1M codes (BFlat with its id map) |", "|---:|---:|", *memory]
    lines += ["", "| codes | shards | codes landed as Parquet (this process) | shards built (a Ray task each) |"]
    lines += ["|---:|---:|---:|---:|", *builds]
    append_report(args.out, lines)


if __name__ == "__main__":
    main()
