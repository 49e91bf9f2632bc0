"""A bounded load test of `viscover serve` on a benchmark home (issue 16), from a thread-per-client load
generator in this process; every phase stops by itself.

1. Throughput and latency: search by pin id, by upload and by crop at 1, 4 and 16 clients, each row for
   `--seconds`. Each client sends distinct queries (2,000 a kind, real pins of the home, cycled), so few
   answers come from the server's query cache.
2. Memory: 4 clients mixing the three kinds for `--soak-minutes`; the server's resident memory is sampled every
   10 s and its growth is the slope of a least-squares line through the samples after the first minute.
3. Overload: a server with `VISCOVER_MAX_REQUESTS_IN_FLIGHT=2` under 16 upload clients for `--overload-seconds`:
   the share answered 503 and how fast those answers came.

    python benchmarks/load_test.py --home /tmp/bench100k --out docs/results/reliability.md
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from serve_latency import SHARED, append_report, cpu_seconds, percentiles, requests_for, served

from viscover import Box, Searcher

QUERIES = 2000


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def load(url: str, work: list, clients: int, seconds: float) -> tuple[dict[int, list[float]], float]:
    """Each of `clients` threads sends `work` (cycled from its own offset) for `seconds`: latencies by status."""
    found: dict[int, list[float]] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as session:
            n = offset
            while time.monotonic() < stop:
                form, files = work[n % len(work)]
                n += clients
                start = time.perf_counter()
                status = session.post("/v1/search", data=form, files=files).status_code
                with lock:
                    found.setdefault(status, []).append(time.perf_counter() - start)

    wall = time.perf_counter()
    threads = [threading.Thread(target=client, args=(offset,)) for offset in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=20.0, help="per kind and client count")
    parser.add_argument("--soak-minutes", type=float, default=5.0)
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="append the tables to this Markdown file")
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))
    rng = np.random.default_rng(args.seed)
    with Searcher.open(args.home) as searcher:
        real = [pin for pin in searcher.catalog if "~" not in pin.pin_id and pin.location.endswith(".jpg")]
        pins = [real[i] for i in rng.choice(len(real), QUERIES, replace=False)]
        size = f"{len(searcher.catalog):,} pins"
    images = [Path(pin.location).read_bytes() for pin in pins]
    crops = []
    for pin in pins:
        w, h = (rng.uniform(0.4, 0.8) * side for side in (pin.width, pin.height))
        x, y = int(rng.uniform(0, pin.width - w)), int(rng.uniform(0, pin.height - h))
        crops.append(str(Box.from_xywh(x, y, int(w), int(h))))
    work = {kind: requests_for(kind, pins, images, crops) for kind in ("pin id", "upload", "crop")}
    lines = [
        f"\n#### Throughput and latency ({size}, {args.seconds:g} s a row)\n",
        "| search by | clients | requests/s | p50 ms | p95 ms | p99 ms | p99/p50 | errors | server CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with served(args.home) as (url, server):
        load(url, work["upload"][:20], 1, 5)  # warm-up
        for kind in work:
            for clients in (1, 4, 16):
                cpu = cpu_seconds(server.pid)
                found, wall = load(url, work[kind], clients, args.seconds)
                cpu = (cpu_seconds(server.pid) - cpu) / wall
                ok = found.get(200, [])
                errors = sum(len(v) for status, v in found.items() if status != 200)
                p50, p95, p99 = percentiles(ok)
                line = (
                    f"| {kind} | {clients} | {len(ok) / wall:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | "
                    f"{p99 / p50:.2f} | {errors} | {100 * cpu:.0f}% of a core |"
                )
                print(line, flush=True)
                lines.append(line)
        mixed = [request for trio in zip(*work.values(), strict=True) for request in trio]
        samples: list[tuple[float, float]] = []
        start, statuses = time.monotonic(), Counter()
        sampler_done = threading.Event()

        def sample() -> None:
            while not sampler_done.wait(10):
                samples.append(((time.monotonic() - start) / 60, resident_mb(server.pid)))

        sampler = threading.Thread(target=sample)
        samples.append((0.0, resident_mb(server.pid)))
        sampler.start()
        found, _ = load(url, mixed, 4, args.soak_minutes * 60)
        sampler_done.set()
        sampler.join()
        statuses.update({status: len(v) for status, v in found.items()})
    after_warm_up = np.array([s for s in samples if s[0] >= 1.0])
    slope = float(np.polyfit(after_warm_up[:, 0], after_warm_up[:, 1], 1)[0]) if len(after_warm_up) > 2 else 0.0
    lines += [
        f"\n#### Memory over {args.soak_minutes:g} minutes of 4 mixed clients\n",
        f"{sum(statuses.values()):,} requests ({dict(statuses)}); resident memory {samples[0][1]:.0f} MB at the "
        f"start, {samples[-1][1]:.0f} MB at the end; after the first minute it grew {slope:+.2f} MB a minute "
        f"(least squares over {len(after_warm_up)} samples, every 10 s).",
        "",
        "| minute | " + " | ".join(f"{m:.1f}" for m, _ in samples) + " |",
        "|---|" + "---:|" * len(samples),
        "| MB | " + " | ".join(f"{mb:.0f}" for _, mb in samples) + " |",
    ]
    os.environ["VISCOVER_MAX_REQUESTS_IN_FLIGHT"] = "2"
    with served(args.home) as (url, _):
        found, wall = load(url, work["upload"], 16, args.overload_seconds)
    del os.environ["VISCOVER_MAX_REQUESTS_IN_FLIGHT"]
    total = sum(len(v) for v in found.values())
    busy = found.get(503, [])
    p50, _, p99 = percentiles(busy) if busy else (0.0, 0.0, 0.0)
    lines += [
        f"\n#### Overload: 16 upload clients, at most 2 requests in flight, {args.overload_seconds:g} s\n",
        f"{total:,} answers: "
        + ", ".join(f"{len(v):,} answered {status}" for status, v in sorted(found.items()))
        + f"; the 503s took p50 {p50:.1f} ms, p99 {p99:.1f} ms; 200s p50 "
        f"{percentiles(found.get(200, [1.0]))[0]:.1f} ms.",
    ]
    append_report(args.out, lines)


if __name__ == "__main__":
    main()
