"""Crash safety, shown by killing the real process (issue 16): each job runs as the `viscover` command in a
subprocess and is SIGKILLed (with everything it started: the whole process group) at seeded random instants.

For each job, on a catalog of real ikea-rooms products (whole rooms, so the catalog has boards):
1. The job runs once uninterrupted from its starting state; its final state is the reference: the pins, the
   codes of the visual index by key, the stored objects, the Related Pins ranker's file, and the top 10 of
   searches by the first 10 pins.
2. The job runs again from the same starting state and is killed at a random instant of its uninterrupted
   run time, again and again on the same home, so each run resumes what the killed ones left, until it has
   been killed `--kills` times (runs that end before their instant do not count; at most 3x as many runs). After every
   kill `verify` must find no damage (the catalog passes SQLite's integrity check, the published index reads,
   no indexed key names a missing pin or object, none twice); unfinished work is allowed.
3. Whenever a run finishes (before its kill came, or the run after the last kill), the state must equal the
   reference exactly; the home then starts again from the starting state.

    python benchmarks/kill_harness.py --pins 240 --kills 30 --out docs/results/reliability.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viscover import Searcher, Settings
from viscover.backup import verify
from viscover.index.shards import stored_codes
from viscover.related.related import MODEL_FILE
from viscover.search import PinQuery

SHARED = Path(__file__).resolve().parents[2] / "shared"
VISCOVER = Path(sys.executable).parent / "viscover"
# job → (the job its starting state comes from, the command's arguments)
JOBS = {
    "ingest": (None, ["ingest", "{manifest}"]),
    "index": ("ingest", ["index"]),
    "objects": ("index", ["objects", "--no-windows"]),
    "related train": ("index", ["related", "train"]),
    "index --ray": ("ingest", ["index", "--ray", "local"]),
}


@dataclass
class JobReport:
    job: str
    seconds: float = 0.0  # one uninterrupted run
    kills: int = 0
    finished_before_kill: int = 0
    states_checked: int = 0
    completions_equal: int = 0
    damage: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)


def room_manifest(pins: int, folder: Path) -> Path:
    """Products of whole ikea-rooms rooms, room by room in name order, until there are at least `pins`."""
    dataset = SHARED / "datasets" / "ikea-rooms"
    rows = [json.loads(line) for line in (dataset / "products.jsonl").read_text().splitlines() if line.strip()]
    by_room: dict[str, list[dict]] = {}
    for row in rows:
        by_room.setdefault(row["boards"][0], []).append(row)
    chosen: dict[str, dict] = {}
    for room in sorted(by_room):
        for row in by_room[room]:
            chosen[row["id"]] = {**row, "image": str(dataset / row["image"])}
        if len(chosen) >= pins:
            break
    path = folder / "products.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in chosen.values()))
    return path


def run(home: Path, arguments: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VISCOVER), "--home", str(home), "-q", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: a kill takes Ray's processes with it
    )


def finish(home: Path, arguments: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    process = run(home, arguments, env)
    _, errors = process.communicate(timeout=1800)
    if process.returncode:
        raise RuntimeError(f"viscover {' '.join(arguments)} failed: {errors.decode()[-2000:]}")
    return time.perf_counter() - start


def fingerprint(home: Path) -> dict[str, object]:
    """The state a job must leave, whatever was killed on the way."""
    with Searcher.open(home) as searcher:
        catalog, snapshot = searcher.catalog, searcher.snapshot()
        pins = sorted((p.pin_id, p.sha256, p.description, p.boards, p.category) for p in catalog)
        state: dict[str, object] = {"pins": pins}
        if snapshot.visual is not None:
            codes = snapshot.visual.codes
            by_key = dict(zip(codes.ids().tolist(), map(bytes, stored_codes(codes)), strict=True))
            state["codes"] = hashlib.sha256(repr(sorted(by_key.items())).encode()).hexdigest()
            first = sorted(pin[0] for pin in pins)[:10]
            state["results"] = [[hit.pin_id for hit in searcher.search(PinQuery(pin), 10)] for pin in first]
        if snapshot.objects is not None:
            objects = catalog.objects(snapshot.objects.model)
            keys = catalog.by_keys(sorted({o.key for o in objects}))
            state["objects"] = sorted((keys[o.key].pin_id, tuple(round(v, 2) for v in o.box), o.label) for o in objects)
            state["object index"] = len(snapshot.objects.codes)
        model = home / MODEL_FILE
        if model.exists():
            state["ranker"] = hashlib.sha256(model.read_bytes()).hexdigest()
        return state


def kill_loop(job: str, start: Path, work: Path, kills: int, env: dict[str, str], seed: int) -> JobReport:
    """Step 1 to 3 above for one job, from the home `start`."""
    arguments = [a.format(manifest=env["HARNESS_MANIFEST"]) for a in JOBS[job][1]]
    report = JobReport(job)
    reference_home = work / f"{job}-reference"
    shutil.copytree(start, reference_home)
    report.seconds = finish(reference_home, arguments, env)
    reference = fingerprint(reference_home)
    home = work / f"{job}-killed"
    shutil.copytree(start, home)
    settings = Settings.load(home)
    rng = np.random.default_rng(seed)

    def completed() -> None:
        report.states_checked += 1
        state = fingerprint(home)
        if state == reference:
            report.completions_equal += 1
        else:
            report.differences.append(", ".join(k for k in reference if state.get(k) != reference[k]) or "keys")
        shutil.rmtree(home)
        shutil.copytree(start, home)

    attempts = 0
    while report.kills < kills and attempts < 3 * kills:  # runs that end before their instant do not count
        attempts += 1
        process = run(home, arguments, env)
        try:
            _, errors = process.communicate(timeout=rng.uniform(0, report.seconds))
            report.finished_before_kill += 1
            if process.returncode:
                report.damage.append(f"a run after a kill failed: {errors.decode()[-500:]}")
            completed()
            continue
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        report.kills += 1
        report.states_checked += 1
        found = verify(settings)
        report.damage.extend(f"after kill {report.kills}: {problem}" for problem in found.damage)
    finish(home, arguments, env)
    completed()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pins", type=int, default=240, help="ikea-rooms products, whole rooms")
    parser.add_argument("--kills", type=int, default=30, help="kills per job")
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file, a row per job as it ends")
    args = parser.parse_args()
    lines = [
        f"\n{args.pins}+ ikea-rooms products, {args.kills} kills a job, seed {args.seed}\n",
        "| job | one run, s | kills | finished before its kill | states checked | completions equal to the "
        "uninterrupted run | damage found |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for report in run_harness(args.pins, args.kills, args.jobs, args.seed):
        row = [
            f"| `viscover {report.job}` | {report.seconds:.1f} | {report.kills} | {report.finished_before_kill} | "
            f"{report.states_checked} | {report.completions_equal} of {report.finished_before_kill + 1} | "
            f"{len(report.damage)} |",
            *(f"<!-- {report.job}: {problem} -->" for problem in [*report.damage, *report.differences]),
        ]
        print("\n".join([*lines, *row]) if lines else "\n".join(row), flush=True)
        if args.out:
            with args.out.open("a") as handle:
                handle.write("\n".join([*lines, *row]) + "\n")
        lines = []


def run_harness(pins: int, kills: int, jobs: list[str], seed: int = 0) -> Iterator[JobReport]:
    """Build the starting homes once, then the kill loop of each job in `jobs`, reported as each ends."""
    work = Path(tempfile.mkdtemp(prefix="viscover-kills-"))
    manifest = room_manifest(pins, work)
    env = {
        **os.environ,
        "VISCOVER_MODELS_DIR": os.environ.get("VISCOVER_MODELS_DIR", str(SHARED / "models")),
        "VISCOVER_CACHE_DIR": str(work / "cache"),  # one ONNX export for every home
        "HARNESS_MANIFEST": str(manifest),
    }
    os.environ["VISCOVER_CACHE_DIR"] = env["VISCOVER_CACHE_DIR"]
    starts: dict[str | None, Path] = {None: work / "empty"}
    starts[None].mkdir()
    for state, before in (("ingest", None), ("index", "ingest")):
        shutil.copytree(starts[before], work / state)
        finish(work / state, [a.format(manifest=manifest) for a in JOBS[state][1]], env)
        starts[state] = work / state
    try:
        for job in jobs:
            yield kill_loop(job, starts[JOBS[job][0]], work, kills, env, seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
