"""Batch throughput of `viscover index --ray` and `viscover objects --ray` on a local Ray against the
in-process jobs, on the same real images in the same run.

The in-process job runs before and after the Ray job (each into its own fresh home), and the Ray job is
compared with their mean, so a machine that warms up or slows down during the run favours neither. Every home
ingests the same images first (not timed); the files are read once beforehand, so all runs find them in the
page cache, and a warm-up job on 16 of the images exports the model once (to a cache all homes share) and
imports what the jobs import. Times are the jobs' own (`IndexReport.seconds`, `ObjectsReport.seconds`): from
the first image to the last commit, model loading included; connecting to Ray is not (once per process, as
`serve` does).

    python benchmarks/ray_batch.py --images 1000 --object-pins 24 --out docs/results/cluster.md
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from serve_latency import append_report

from viscover import Engine
from viscover.distributed import RayRunner, connect
from viscover.search import index_objects

SHARED = Path(__file__).resolve().parents[2] / "shared"


def manifest(count: int, folder: Path) -> Path:
    """A manifest of the first `count` Caltech-101 images, by sorted path."""
    images = sorted((SHARED / "datasets" / "caltech101").glob("*/*.jpg"))[:count]
    for image in images:
        image.read_bytes()  # into the page cache
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "images.jsonl"
    path.write_text(
        "".join(json.dumps({"image": str(image), "id": f"img{n}"}) + "\n" for n, image in enumerate(images))
    )
    return path


class FirstBatchTimed:
    """A runner that notes when its first batch arrived and how big it was: Ray's start-up (worker processes,
    imports, model sessions), to tell apart from its pace after."""

    def __init__(self, runner: RayRunner) -> None:
        self.runner, self.runtime, self.first = runner, runner.runtime, {}

    def _timed(self, job: str, batches):
        start = time.perf_counter()
        for batch in batches:
            self.first.setdefault(job, (time.perf_counter() - start, len(getattr(batch, "keys", [batch]))))
            yield batch

    def embed(self, *args):
        return self._timed("index", self.runner.embed(*args))

    def detect(self, *args):
        return self._timed("objects", self.runner.detect(*args))

    def published(self, *args):
        self.runner.published(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--object-pins", type=int, default=24)
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file")
    parser.add_argument(
        "--warm-ray",
        action="store_true",
        help="first run both jobs on 16 images on Ray, untimed, as a running cluster has done before (its "
        "Ray Data stats and autoscaling actors exist; each job still starts its own model actors)",
    )
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))
    work = Path(tempfile.mkdtemp(prefix="viscover-ray-batch-"))
    os.environ["VISCOVER_CACHE_DIR"] = str(work / "cache")  # one ONNX export for every home
    images = manifest(args.images, work)
    with Engine.open(work / "warm-up") as engine:  # export the model and import what the jobs import, untimed
        engine.ingest(manifest(16, work / "warm-up"), progress=False)
        engine.index(progress=False)
        index_objects(engine, progress=False)
    connect(None)
    if args.warm_ray:
        with Engine.open(work / "warm-up-ray") as engine:
            engine.ingest(manifest(16, work / "warm-up-ray"), progress=False)
            engine.index(progress=False, runner=RayRunner(engine.settings))
            index_objects(engine, progress=False, runner=RayRunner(engine.settings))
    results: dict[str, list[float]] = {}
    shape = None
    for n, where in enumerate(("here", "ray", "here")):
        with Engine.open(work / f"home-{n}") as engine:
            engine.ingest(images, progress=False)
            runner = FirstBatchTimed(RayRunner(engine.settings)) if where == "ray" else None
            shape = runner.runner.shape if runner else shape
            report = engine.index(progress=False, runner=runner)
            few = {pin.key for pin in list(engine.catalog)[: args.object_pins]}
            objects = index_objects(engine, progress=False, only=few, runner=runner)
        results.setdefault(where, []).append(report.images_per_second)
        results.setdefault(f"{where} objects", []).append(objects.pins / objects.seconds)
        if runner:  # the pace after the first batch, and the start-up before it
            for job, done in (("index", report.extracted), ("objects", objects.pins)):
                took, count = runner.first[job]
                seconds = report.seconds if job == "index" else objects.seconds
                results[f"{job} start-up"] = [took]
                results[f"{job} after"] = [(done - count) / (seconds - took)]
        print(f"{where}: {report.images_per_second:.1f} img/s, objects {objects.pins / objects.seconds:.2f} pins/s")
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"\n{args.images} Caltech-101 images ({args.object_pins} of them for objects), {cores} cores, "
        f"{'a Ray that ran a job before' if args.warm_ray else 'a fresh local Ray'}; Ray's model "
        f"pool: {shape.actors} actor(s) of {shape.cpus:g} CPUs and {shape.threads} ONNX Runtime threads\n",
        "| job | in process (before, after) | on Ray | Ray / in process | Ray's start-up | Ray after it | "
        "that / in process |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for job, unit, key in (("index", "img/s", ""), ("objects", "pins/s", " objects")):
        here, ray = results[f"here{key}"], results[f"ray{key}"][0]
        mean = sum(here) / len(here)
        after = results[f"{job} after"][0]
        lines.append(
            f"| {job} | {here[0]:.2f}, {here[1]:.2f} {unit} | {ray:.2f} {unit} | {ray / mean:.2f} | "
            f"{results[f'{job} start-up'][0]:.1f} s | {after:.2f} {unit} | {after / mean:.2f} |"
        )
    lines.append(f"\nPer core, in process: {sum(results['here']) / 2 / cores:.1f} img/s of CNN features.")
    append_report(args.out, lines)


if __name__ == "__main__":
    main()
