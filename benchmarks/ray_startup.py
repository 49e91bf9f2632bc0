"""How long Ray Data takes to start a pipeline shaped like `index --ray` when the pipeline itself does no work:
the part of a batch job's start-up that is Ray's, not viscover's.

The pipeline has the job's shape: rows of pin keys in blocks of 32, a map task reserving `READ_CPUS`, then an
actor pool of `pool_shape`'s actors. Its task and its actors return their input, so nothing is imported or
computed but Ray's own code. It runs several times on one fresh local Ray: the first run also starts Ray Data's
own actors, the later ones only new model actors, as each batch job does on a running cluster.

    python benchmarks/ray_startup.py --runs 3 --out docs/results/cluster.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ray
import ray.data
from serve_latency import append_report

from viscover.distributed import cluster_pool, connect
from viscover.distributed.batch import READ_CPUS

ROWS, BLOCK = 600, 32


def passthrough(batch: dict) -> dict:
    return batch


class PassthroughActor:
    def __call__(self, batch: dict) -> dict:
        return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()
    connect(None)
    shape = cluster_pool()
    ray.data.DataContext.get_current().enable_progress_bars = False
    lines = [
        f"\nA pipeline of {ROWS} rows in blocks of {BLOCK} that does no work (a map task of {READ_CPUS:g} CPU, "
        f"{shape.actors} actors of {shape.cpus:g} CPU), run {args.runs} times on one fresh local Ray\n",
        "| run | first batch | all batches |",
        "|---:|---:|---:|",
    ]
    for run in range(1, args.runs + 1):
        start = time.perf_counter()
        dataset = ray.data.from_items([{"key": n} for n in range(ROWS)], override_num_blocks=ROWS // BLOCK)
        dataset = dataset.map_batches(passthrough, batch_size=BLOCK, num_cpus=READ_CPUS).map_batches(
            PassthroughActor,
            compute=ray.data.ActorPoolStrategy(size=shape.actors),
            num_cpus=shape.cpus,
            batch_size=BLOCK,
        )
        first = None
        for _ in dataset.iter_batches(batch_size=None):
            first = first or time.perf_counter() - start
        lines.append(f"| {run} | {first:.2f} s | {time.perf_counter() - start:.2f} s |")
    append_report(args.out, lines)


if __name__ == "__main__":
    main()
