"""Latency of `viscover serve` on a benchmark home: p50/p95/p99 of search by pin id, by upload and by crop at 1
and 4 concurrent clients, beside the same searches in-process (no HTTP) in the same run, with the CPU the
load generator itself and the server used.

Every request is a different query (distinct pins, distinct images, distinct crops), so no answer comes from
the server's query cache. The server runs in its own process with one thread per search call (the default).

    python benchmarks/serve_latency.py --home /tmp/bench100k --out docs/results/serve-latency.md
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from viscover import Box, BytesQuery, PinQuery, Searcher

VISCOVER = str(Path(sys.executable).parent / "viscover")
SHARED = Path(__file__).resolve().parents[2] / "shared"
TARGETS = "targets: at 1 client crop p50 < 60 ms and pin id p50 < 10 ms; at 4 clients p99 < 3x that run's p50"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(home: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`viscover serve` over the home in its own process, once it is ready: its URL and its process."""
    port = free_port()
    server = subprocess.Popen(
        [VISCOVER, "--home", str(home), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not become ready")
            time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        server.wait(30)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = np.percentile(np.array(seconds) * 1000, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def timed(calls: list[Callable[[], object]]) -> list[float]:
    """Seconds each call took, after two untimed warm-up calls (so give at least three)."""
    if len(calls) < 3:
        raise ValueError(f"timed needs 2 warm-up calls and 1 timed call at least, got {len(calls)}")
    for call in calls[:2]:
        call()
    times = []
    for call in calls[2:]:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def latency_table(rows: dict[str, list[float]], baseline: str, digits: int = 1) -> str:
    """A Markdown table of each row's p50/p95/p99 in ms and its p50 over the baseline row's."""
    base = percentiles(rows[baseline])[0]
    lines = [f"| request | p50 ms | p95 ms | p99 ms | p50 / {baseline} |", "|---|---|---|---|---|"]
    for name, times in rows.items():
        p50, p95, p99 = percentiles(times)
        lines.append(
            f"| {name} | {p50:.{digits}f} | {p95:.{digits}f} | {p99:.{digits}f} | {p50 / base:.{digits + 1}f} |"
        )
    return "\n".join(lines)


def write_report(out: Path | None, *parts: str) -> None:
    """Print the parts; with `out`, also write them there under the command that made them."""
    print(*parts, sep="\n\n")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"Made by `python {' '.join(sys.argv)}`\n\n" + "\n\n".join(parts) + "\n")


def append_report(out: Path | None, lines: list[str]) -> None:
    """Print the lines; with `out`, also append them there (several benchmarks add to one results page)."""
    print("\n".join(lines))
    if out:
        with out.open("a") as handle:
            handle.write("\n".join(lines) + "\n")


def requests_for(kind: str, pins: list, images: list[bytes], crops: list[str]):
    """(form, files) of each request of a kind, all distinct."""
    if kind == "pin id":
        return [({"pin_id": pin.pin_id}, None) for pin in pins]
    if kind == "upload":
        return [({}, {"image": ("query.jpg", data, "image/jpeg")}) for data in images]
    return [
        ({"crop": crop}, {"image": ("query.jpg", data, "image/jpeg")}) for data, crop in zip(images, crops, strict=True)
    ]


def run_clients(url: str, work: list, clients: int) -> tuple[list[float], float, float]:
    """Per-request latencies of `work` shared among `clients` threads, the wall time and this process's CPU."""
    latencies: list[float] = []
    lock, queue = threading.Lock(), list(reversed(work))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as session:
            while True:
                with lock:
                    if not queue:
                        return
                    form, files = queue.pop()
                start = time.perf_counter()
                response = session.post("/v1/search", data=form, files=files)
                elapsed = time.perf_counter() - start
                response.raise_for_status()
                with lock:
                    latencies.append(elapsed)

    cpu, wall = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=200, help="requests per kind and client count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))
    rng = np.random.default_rng(args.seed)

    searcher = Searcher.open(args.home)
    real = [pin for pin in searcher.catalog if "~" not in pin.pin_id and pin.location.endswith(".jpg")]
    count = 2 * args.requests  # distinct queries for the 1-client and the 4-client runs
    picked = rng.choice(len(real), count, replace=False)
    pins = [real[i] for i in picked]
    images = [Path(pin.location).read_bytes() for pin in pins]
    crops = []
    for pin in pins:
        w, h = (rng.uniform(0.4, 0.8) * side for side in (pin.width, pin.height))
        crops.append(
            str(Box.from_xywh(int(rng.uniform(0, pin.width - w)), int(rng.uniform(0, pin.height - h)), int(w), int(h)))
        )

    with served(args.home) as (url, server):
        snapshot = searcher.snapshot()
        print(
            f"home {args.home}: {len(searcher.catalog)} pins, {len(snapshot.visual.codes)} indexed, "
            f"{snapshot.visual.bits}-bit {snapshot.visual.codes.spec}; {args.requests} requests per row"
        )
        rows = []
        for kind in ("pin id", "upload", "crop"):
            for clients, half in ((1, slice(0, args.requests)), (4, slice(args.requests, count))):
                work = requests_for(kind, pins[half], images[half], crops[half])
                run_clients(url, work[:5], 1)  # warm-up, not measured (queries reused later are cache hits)
                server_cpu = cpu_seconds(server.pid)
                latencies, wall, load_cpu = run_clients(url, work[5:], clients)
                server_cpu = cpu_seconds(server.pid) - server_cpu
                rows.append(
                    (kind, clients, *percentiles(latencies), len(latencies) / wall, load_cpu / wall, server_cpu / wall)
                )

    in_process = {}
    for kind, queries in (
        ("pin id", [PinQuery(pin.pin_id) for pin in pins[: args.requests]]),
        ("upload", [BytesQuery(data) for data in images[: args.requests]]),
        (
            "crop",
            [BytesQuery(d, Box.parse(c)) for d, c in zip(images[: args.requests], crops[: args.requests], strict=True)],
        ),
    ):
        times = []
        for query in queries:
            start = time.perf_counter()
            searcher.search(query, k=20)
            times.append(time.perf_counter() - start)
        in_process[kind] = 1000 * statistics.median(times)

    header = (
        "| search by | clients | p50 ms | p95 ms | p99 ms | p99/p50 | req/s | in-process p50 ms "
        "| load generator CPU | server CPU |"
    )
    lines = [header, "|" + "---|" * 10]
    for kind, clients, p50, p95, p99, rate, load, server_load in rows:
        lines.append(
            f"| {kind} | {clients} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {p99 / p50:.2f} | {rate:.0f} | "
            f"{in_process[kind]:.1f} | {100 * load:.0f}% of a core | {100 * server_load:.0f}% of a core |"
        )
    table = "\n".join(lines)
    print(table)
    print(TARGETS)
    by = {(kind, clients): (p50, p99) for kind, clients, p50, _, p99, *_ in rows}
    print(
        f"crop p50 at 1 client {by[('crop', 1)][0]:.1f} ms; pin id p50 at 1 client {by[('pin id', 1)][0]:.1f} ms; "
        "p99/p50 at 4 clients: "
        + ", ".join(f"{k} {by[(k, 4)][1] / by[(k, 4)][0]:.2f}" for k in ("pin id", "upload", "crop"))
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"Made by `python {' '.join(sys.argv)}`\n\n{table}\n\n{TARGETS}\n")


if __name__ == "__main__":
    main()
