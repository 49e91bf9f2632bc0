from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import caltech_image
from viscover.config import Settings
from viscover.errors import BadManifestError
from viscover.ingest import Catalog, ingest


def run(catalog: Catalog, path: Path):
    return ingest(catalog, path, Settings(home=catalog.path.parent), progress=False)


def test_folder_ingest_records_categories_and_is_idempotent(caltech_subset: Path, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    report = run(catalog, caltech_subset)
    assert report.added == len(catalog) == 30 and not report.failures
    assert {p.category for p in catalog} == {"accordion", "airplanes", "Leopards", "Motorbikes", "pagoda"}
    pin = next(iter(catalog))
    assert pin.width > 0 and pin.height > 0 and len(pin.sha256) == 64
    again = run(catalog, caltech_subset)
    assert again.added == 0 and again.unchanged == 30 and len(catalog) == 30


def test_bad_files_are_reported_and_skipped_without_losing_stored_pins(tmp_path: Path) -> None:
    folder = tmp_path / "imgs" / "cats"
    folder.mkdir(parents=True)
    shutil.copy(caltech_image("Leopards", 1), folder / "good.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    (folder / "half.jpg").write_bytes(caltech_image("Leopards", 2).read_bytes()[:2000])
    catalog = Catalog(tmp_path / "c.db")
    report = run(catalog, tmp_path / "imgs")
    assert report.added == 1
    reasons = dict(report.failures)
    assert set(map(lambda p: Path(p).name, reasons)) == {"empty.jpg", "notes.jpg", "half.jpg"}
    assert any("empty" in r for r in reasons.values())
    assert [p.location.endswith("good.jpg") for p in catalog] == [True]


def test_copied_bytes_are_duplicates_not_new_pins(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(caltech_image("pagoda", 1), folder / "a.jpg")
    shutil.copy(caltech_image("pagoda", 1), folder / "b.jpg")
    report = run(Catalog(tmp_path / "c.db"), folder)
    assert (report.added, report.unchanged, len(report.failures)) == (1, 1, 0)


def test_interrupted_ingest_resumes(caltech_subset: Path, tmp_path: Path, monkeypatch) -> None:
    catalog = Catalog(tmp_path / "c.db")
    real_add, calls = catalog.add, []

    def add_then_crash(pin):
        if len(calls) == 7:
            raise KeyboardInterrupt
        calls.append(pin)
        return real_add(pin)

    monkeypatch.setattr(catalog, "add", add_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(catalog, caltech_subset)
    monkeypatch.undo()
    assert len(Catalog(tmp_path / "c.db")) == 7
    report = run(catalog, caltech_subset)
    assert (report.added, report.unchanged, len(catalog)) == (23, 7, 30)


def test_csv_and_jsonl_manifests(tmp_path: Path) -> None:
    shutil.copy(caltech_image("accordion", 1), tmp_path / "a.jpg")
    shutil.copy(caltech_image("pagoda", 1), tmp_path / "p.jpg")
    (tmp_path / "m.csv").write_text(
        "image,id,description,boards,category\n"
        "a.jpg,pin-a,a red accordion,music;folk,accordion\n"
        ",pin-x,no image here,,\n"
        "missing.jpg,pin-m,,,\n"
    )
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"path": "p.jpg", "text": "temple", "boards": ["travel"], "label": "pagoda"}) + "\n" + "{not json\n"
    )
    catalog = Catalog(tmp_path / "c.db")
    csv_report = run(catalog, tmp_path / "m.csv")
    jsonl_report = run(catalog, tmp_path / "m.jsonl")
    assert csv_report.added == 1 and jsonl_report.added == 1
    accordion = catalog.get("pin-a")
    assert (accordion.description, accordion.boards, accordion.category) == (
        "a red accordion",
        ("music", "folk"),
        "accordion",
    )
    failures = dict(csv_report.failures + jsonl_report.failures)
    assert any("m.csv:3" in where and "missing image" in why for where, why in failures.items())
    assert any("no such file" in why for why in failures.values())
    assert any("m.jsonl:2" in where and "invalid JSON" in why for where, why in failures.items())


def test_reingesting_a_known_image_with_new_boards_or_text_updates_its_pin(tmp_path: Path) -> None:
    """New saves of a known image reach its pin without decoding it again (its location is known)."""
    shutil.copy(caltech_image("accordion", 1), tmp_path / "a.jpg")
    shutil.copy(caltech_image("accordion", 1), tmp_path / "copy.jpg")
    catalog = Catalog(tmp_path / "c.db")
    (tmp_path / "m.csv").write_text("image,id,description,boards\na.jpg,pin-a,an accordion,music\n")
    run(catalog, tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text(
        "image,description,boards,category\na.jpg,a red accordion,music;folk,instrument\ncopy.jpg,,party,\n"
    )
    report = run(catalog, tmp_path / "m.csv")
    assert (report.added, report.updated, len(catalog)) == (0, 2, 1)
    pin = catalog.get("pin-a")
    assert (pin.description, pin.boards, pin.category) == ("a red accordion", ("music", "folk", "party"), "instrument")
    assert run(catalog, tmp_path / "m.csv").unchanged == 2


def test_unreadable_manifests(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("name,colour\nx,red\n")
    with pytest.raises(BadManifestError, match="no image column"):
        run(Catalog(tmp_path / "c.db"), tmp_path / "m.csv")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(BadManifestError, match="not a folder or a manifest"):
        run(Catalog(tmp_path / "c.db"), tmp_path / "m.txt")
    with pytest.raises(BadManifestError, match="no such file"):
        run(Catalog(tmp_path / "c.db"), tmp_path / "nothing")


def test_manifest_urls_are_fetched(tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(caltech_image("airplanes", 1), served / "plane.jpg")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        (tmp_path / "m.csv").write_text(f"url,category\n{base}/plane.jpg,airplanes\n{base}/gone.jpg,x\n")
        report = run(Catalog(tmp_path / "c.db"), tmp_path / "m.csv")
    finally:
        server.shutdown()
    assert report.added == 1
    assert [why for _, why in report.failures] and "download failed" in report.failures[0][1]
