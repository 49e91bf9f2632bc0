"""The installed `viscover` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import caltech_image

VISCOVER = Path(sys.executable).parent / "viscover"


def viscover(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VISCOVER), "--home", str(home), "-q", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )


def test_ingest_index_search_json(caltech_subset: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = tmp_path / "extra"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    ingest = viscover("ingest", str(caltech_subset), home=home)
    assert ingest.returncode == 0 and "30 added" in ingest.stdout
    partial = viscover("ingest", str(bad), home=home)
    assert partial.returncode == 0 and "broken.jpg" in partial.stderr and "1 skipped" in partial.stdout
    index = viscover("index", home=home)
    assert index.returncode == 0 and "extracted 30 new" in index.stdout, index.stderr
    query = str(caltech_image("Motorbikes", 20))
    search = viscover("search", query, "-k", "3", "--json", home=home)
    rows = json.loads(search.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3] and rows[0]["category"] == "Motorbikes"
    table = viscover("search", query, "--crop", "0,0,100,80", "--metric", "l1", home=home)
    assert table.returncode == 0 and "Motorbikes" in table.stdout


def test_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    result = viscover("search", str(caltech_image("pagoda", 1)), "--crop", "1,2,3", home=tmp_path)
    assert result.returncode == 2 and "four integers" in result.stderr
    result = viscover("ingest", str(tmp_path / "nope"), home=tmp_path)
    assert result.returncode == 2 and "no such file or folder" in result.stderr
    result = viscover("index", "--backbone", "resnet9000", home=tmp_path)
    assert result.returncode == 2 and "unknown backbone 'resnet9000'" in result.stderr


def test_eval_retrieval_writes_table_and_plots(caltech_subset: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = viscover(
        "eval",
        "retrieval",
        str(caltech_subset),
        "--binarize",
        "none,median",
        "--metric",
        "l2,hamming",
        "-k",
        "1,5",
        "--queries",
        "10",
        "--out",
        str(out),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    assert "binary median 1280-bit" in result.stdout and "P@5" in result.stdout
    assert {p.name for p in out.iterdir()} == {"retrieval.md", "retrieval.csv", "retrieval.png", "feature-map.png"}
    refused = viscover("eval", "retrieval", "--binarize", "none", "--metric", "hamming", home=tmp_path / "home")
    assert refused.returncode == 2 and "needs metric l2 or l1" in refused.stderr
