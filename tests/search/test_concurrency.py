"""The read path under a live writer, and the single-writer lock, with real processes.

Eight threads share one `Searcher` while another process ingests, indexes and deletes: no thread sees an
error or a pin that is not (or no longer) there, new pins become findable and deleted ones disappear within
a second of the writer returning. Two writer processes queue on the home's lock; a SIGKILLed one leaves none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import CLASSES, caltech_image
from viscover import BytesQuery, PinQuery, Searcher

WRITER = """
import json, shutil, sys, time
from pathlib import Path
from viscover import Engine

home, log_path = Path(sys.argv[1]), Path(sys.argv[2])
images = [Path(p) for p in sys.argv[3:]]

def note(event, image):
    # log the event, then wait until the test has looked for it (a pin must not go before it was looked for)
    number = len(log_path.read_text().splitlines())
    with log_path.open("a") as log:
        log.write(json.dumps({"event": event, "image": str(image), "time": time.time(), "number": number}) + "\\n")
    deadline = time.time() + 30
    while not (log_path.parent / f"ack-{number}").exists() and time.time() < deadline:
        time.sleep(0.01)

with Engine.open(home) as engine:
    for round_number, image in enumerate(images):
        folder = home.parent / "incoming" / f"round{round_number}" / "new"
        folder.mkdir(parents=True)
        shutil.copy(image, folder / image.name)
        engine.ingest(folder.parent, progress=False)
        engine.index(progress=False)
        note("indexed", image)
        if round_number % 2:  # every other round, delete the pin the round before added
            previous = images[round_number - 1]
            engine.delete([pin.pin_id for pin in engine.catalog if pin.location.endswith("/" + previous.name)])
            note("deleted", previous)
"""

HOLDER = """
import sys, time
from pathlib import Path
from viscover.storage import write_lock

with write_lock(Path(sys.argv[1]), 5):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def pin_id_of(path: Path) -> str:
    """Folder ingest names a pin by the first 16 hex digits of its bytes' SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@pytest.fixture
def home(indexed_home: Path, tmp_path: Path) -> Path:
    shutil.copytree(indexed_home, tmp_path / "home")
    return tmp_path / "home"


def test_eight_threads_share_one_searcher_while_another_process_writes(home: Path, tmp_path: Path) -> None:
    (tmp_path / "pool").mkdir()
    newcomers = [tmp_path / "pool" / f"{category}-30.jpg" for category in CLASSES] + [
        tmp_path / "pool" / "pagoda-31.jpg"
    ]
    for path in newcomers:
        category, number = path.stem.split("-")
        shutil.copy(caltech_image(category, int(number)), path)
    log = tmp_path / "writer.jsonl"
    log.touch()
    searcher = Searcher.open(home)
    originals = {pin.pin_id: pin.location for pin in searcher.catalog}
    stable = [PinQuery(pin_id) for pin_id in list(originals)[::4]]
    stable += [BytesQuery(caltech_image(category, 25).read_bytes()) for category in CLASSES]
    known = dict(originals) | {pin_id_of(p): p.name for p in newcomers}
    errors: list[BaseException] = []
    seen: list[tuple[float, str, str]] = []  # (search start, pin id, location)
    done = threading.Event()

    def search_forever(offset: int) -> None:
        position = offset
        while not done.is_set():
            started = time.time()
            try:
                for hit in searcher.search(stable[position % len(stable)], k=8):
                    seen.append((started, hit.pin_id, hit.pin.location))
            except BaseException as exc:
                errors.append(exc)
            position += 1

    threads = [threading.Thread(target=search_forever, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), str(log), *map(str, newcomers)], stderr=subprocess.PIPE, text=True
    )
    delays: dict[str, float] = {}
    keys: dict[str, int] = {}
    handled: set[tuple[str, str]] = set()
    try:
        while writer.poll() is None or len(handled) < len(log.read_text().splitlines()):
            for line in log.read_text().splitlines():
                event = json.loads(line)
                image = Path(event["image"])
                if (event["event"], image.name) in handled:
                    continue
                handled.add((event["event"], image.name))
                query = BytesQuery(image.read_bytes())
                while True:
                    hits = searcher.search(query, k=3)  # a tiny catalog's short codes tie: count folded pins
                    ids = {pin_id for hit in hits for pin_id in (hit.pin_id, *hit.near_duplicates)}
                    if event["event"] == "indexed" and pin_id_of(image) in ids:
                        keys[image.name] = searcher.catalog.get(pin_id_of(image)).key
                        break
                    # a deleted pin must leave the searched index, not only be filtered out by the catalog
                    indexed = searcher.snapshot().visual.codes.ids()
                    if event["event"] == "deleted" and pin_id_of(image) not in ids and keys[image.name] not in indexed:
                        break
                    assert time.time() - event["time"] < 5, f"{event} not visible after 5 s"
                    time.sleep(0.01)
                delays[f"{event['event']} {image.name}"] = time.time() - event["time"]
                (log.parent / f"ack-{event['number']}").touch()
            time.sleep(0.02)
    finally:
        done.set()
        for thread in threads:
            thread.join()
        writer.wait(60)
        searcher.close()
    assert writer.returncode == 0, writer.stderr.read()
    assert not errors, errors[:3]
    print("visibility delays (s):", {k: round(v, 3) for k, v in delays.items()}, "results checked:", len(seen))
    assert len(delays) == 9 and max(delays.values()) < 1.0, delays
    assert len(seen) > 100
    deleted_at = {
        pin_id_of(Path(e["image"])): e["time"]
        for e in map(json.loads, log.read_text().splitlines())
        if e["event"] == "deleted"
    }
    for started, pin_id, location in seen:
        assert pin_id in known, f"result names a pin that never existed: {pin_id}"
        assert location.endswith(Path(known[pin_id]).name), f"{pin_id} came back with another pin's image"
        assert started <= deleted_at.get(pin_id, float("inf")), f"{pin_id} returned after it was deleted"


def test_a_second_writer_waits_for_the_first_then_proceeds(home: Path, caltech_subset: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home), "2"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    ingest = run_viscover(home, "ingest", str(caltech_subset))
    waited = time.monotonic() - started
    holder.wait(10)
    assert ingest.returncode == 0 and "30 already stored" in ingest.stdout, ingest.stderr
    assert waited > 1.0  # it queued behind the holder's two seconds instead of writing beside it


def test_a_writer_that_cannot_wait_names_the_holder(home: Path, caltech_subset: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = run_viscover(home, "ingest", str(caltech_subset), VISCOVER_WRITE_LOCK_TIMEOUT_S="0.3")
        assert refused.returncode == 2 and f"pid {holder.pid}" in refused.stderr, refused.stderr
        assert "VISCOVER_WRITE_LOCK_TIMEOUT_S" in refused.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_sigkilled_writer_leaves_no_stale_lock(home: Path, caltech_subset: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home), "30"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with Searcher.open(home) as searcher:
        pin_id = next(iter(searcher.catalog)).pin_id
    started = time.monotonic()
    after = run_viscover(home, "delete", pin_id, VISCOVER_WRITE_LOCK_TIMEOUT_S="2")
    assert after.returncode == 0 and "deleted 1 pins" in after.stdout, after.stderr
    assert time.monotonic() - started < 15


def run_viscover(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "viscover"), "--home", str(home), "-q", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
