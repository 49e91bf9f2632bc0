"""Hamming search speed: FAISS exact binary search (the default `BFlat` index) and FAISS `BIVF`, versus
a NumPy brute-force baseline (XOR + popcount), with recall@k against exact search, at 100k and 1M
random 256-bit codes, in the same run. `BFlat` runs twice: with FAISS's default OpenMP threads (one per
core) and with one thread per call, as the serving path sets it (`search_threads`); `--busy N` keeps N other
processes spinning meanwhile, as a server shares its cores with an ingest or an index job.

    python benchmarks/hamming_search.py --sizes 100000 1000000 --queries 200 --busy 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np

from viscover.index import VectorIndex
from viscover.threads import limit_threads


def numpy_topk(codes64: np.ndarray, query64: np.ndarray, k: int) -> np.ndarray:
    distances = np.bitwise_count(np.bitwise_xor(codes64, query64)).sum(axis=1)
    return np.argpartition(distances, k)[:k]


def queries_per_second(search, queries: np.ndarray) -> float:
    start = time.perf_counter()
    for query in queries:
        search(query)
    return len(queries) / (time.perf_counter() - start)


def spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--bits", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--busy", type=int, default=0, help="other processes keeping cores busy meanwhile")
    args = parser.parse_args()

    busy = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for process in busy:
        process.start()
    cores = len(os.sched_getaffinity(0))
    rng = np.random.default_rng(0)
    print(f"{args.bits}-bit codes, k={args.k}, {args.queries} single queries each, {args.busy} busy processes")
    print(f"{'codes':>9} {'method':<24} {'queries/s':>10} {'ms/query':>9} {'vs numpy':>9} {'recall@k':>9}")
    for size in args.sizes:
        codes = rng.integers(0, 256, (size, args.bits // 8), dtype=np.uint8)
        queries = codes[rng.choice(size, args.queries, replace=False)]
        codes64 = codes.view(np.uint64)
        baseline = queries_per_second(lambda q, c=codes64: numpy_topk(c, q.view(np.uint64), args.k), queries[:20])
        rows = [("numpy brute", baseline, 1.0)]
        exact = None
        for spec, threads in (("BFlat", cores), ("BFlat", 1), (f"BIVF{int(np.sqrt(size))}", 1)):
            limit_threads(threads)
            index = VectorIndex.create(spec, "hamming", args.bits)
            index.add(np.arange(size), codes)
            if spec != "BFlat":
                index.faiss_index.index.nprobe = 16
            qps = queries_per_second(lambda q, i=index: i.search(q[None], args.k), queries)
            found = index.search(queries, args.k)[1]
            exact = found if exact is None else exact
            recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, exact, strict=True)])
            rows.append((f"faiss {spec}, {threads} thread{'s' * (threads > 1)}", qps, recall))
        for name, qps, recall in rows:
            print(f"{size:>9} {name:<24} {qps:>10.1f} {1000 / qps:>9.2f} {qps / baseline:>8.1f}x {recall:>9.2f}")
    for process in busy:
        process.terminate()


if __name__ == "__main__":
    main()
