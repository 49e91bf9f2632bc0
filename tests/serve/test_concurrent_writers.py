"""Two writer processes (one ingesting and indexing, one deleting, each a `viscover` command queueing on the
home's write lock) while a server answers searches from four client threads: no client sees an error, no pin
is lost or left behind, and the server serves the last published index."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import caltech_image
from tests.serve.conftest import start
from tests.serve.test_api import upload
from viscover import Searcher, Settings
from viscover.backup import verify

VISCOVER = Path(sys.executable).parent / "viscover"


def viscover(home: Path, *args: str) -> None:
    done = subprocess.run([str(VISCOVER), "--home", str(home), "-q", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_two_writer_processes_and_a_serving_server_lose_nothing(indexed_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)
    with Searcher.open(home) as before:
        originals = sorted(pin.pin_id for pin in before.catalog)
    added = [caltech_image("pagoda", n) for n in range(31, 37)]
    deleted = originals[:5]
    statuses: Counter[int] = Counter()
    writing = threading.Event()
    writing.set()

    def adder() -> None:
        for n, image in enumerate(added):
            folder = tmp_path / "incoming" / f"round{n}" / "pagoda"
            folder.mkdir(parents=True)
            shutil.copy(image, folder)
            viscover(home, "ingest", str(folder.parent))
            viscover(home, "index")

    def deleter() -> None:
        for pin_id in deleted:
            viscover(home, "delete", pin_id)

    for server in start(home):

        def client(url: str = server.url) -> None:
            query = upload(caltech_image("Leopards", 3))
            with httpx.Client(base_url=url, timeout=60) as session:
                while writing.is_set():
                    answer = session.post("/v1/search", files=query, data={"k": "10"})
                    statuses[answer.status_code] += 1
                    statuses[session.get("/v1/pins", params={"limit": "50"}).status_code] += 1

        readers = [threading.Thread(target=client) for _ in range(4)]
        writers = [threading.Thread(target=adder), threading.Thread(target=deleter)]
        for thread in [*readers, *writers]:
            thread.start()
        for thread in writers:
            thread.join(300)
        writing.clear()
        for thread in readers:
            thread.join(60)
        assert set(statuses) == {200} and sum(statuses.values()) > 20, statuses
        with httpx.Client(base_url=server.url, timeout=60) as session:
            ready = session.get("/readyz").json()
            expected = len(originals) + len(added) - len(deleted)
            assert ready["pins"] == ready["indexed"] == expected
            for image in added:  # each added image finds itself first, through the server
                answer = session.post("/v1/search", files=upload(image), data={"k": "1"}).json()
                assert answer["results"][0]["pin_id"] == hashlib.sha256(image.read_bytes()).hexdigest()[:16]
    added_ids = {hashlib.sha256(image.read_bytes()).hexdigest()[:16] for image in added}
    with Searcher.open(home) as after:
        assert sorted(pin.pin_id for pin in after.catalog) == sorted(set(originals) - set(deleted) | added_ids)
    assert verify(Settings.load(home)).ok  # every pin indexed, no indexed key without its pin
