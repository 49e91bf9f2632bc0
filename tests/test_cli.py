"""The installed `viscover` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.conftest import caltech_image, coco_val_image

VISCOVER = Path(sys.executable).parent / "viscover"


def viscover(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VISCOVER), "--home", str(home), "-q", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
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
    by_pin = json.loads(viscover("search", rows[0]["pin_id"], "-k", "1", "--json", home=home).stdout)
    assert by_pin[0]["pin_id"] == rows[0]["pin_id"] and by_pin[0]["similarity"] == 1.0
    unknown = viscover("search", "no-such-pin", home=home)
    assert unknown.returncode == 2 and "neither an image file nor a pin id" in unknown.stderr


def test_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    result = viscover("search", str(caltech_image("pagoda", 1)), "--crop", "1,2,3", home=tmp_path)
    assert result.returncode == 2 and "four numbers" in result.stderr
    result = viscover("ingest", str(tmp_path / "nope"), home=tmp_path)
    assert result.returncode == 2 and "no such file or folder" in result.stderr
    result = viscover("index", "--backbone", "resnet9000", home=tmp_path)
    assert result.returncode == 2 and "unknown backbone 'resnet9000'" in result.stderr
    result = viscover("search", "no-such-pin", home=tmp_path)
    assert result.returncode == 2 and "run `viscover index` first" in result.stderr
    result = viscover("finetune", "../../escape", home=tmp_path)
    assert result.returncode == 2 and "plain name" in result.stderr and not (tmp_path.parent / "escape").exists()
    result = viscover("info", home=tmp_path, VISCOVER_MIN_SCORE="2")  # a bad setting, not a traceback
    assert result.returncode == 2 and "min_score" in result.stderr and "Traceback" not in result.stderr


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


def test_detect_an_image_as_json_and_a_drawing(tmp_path: Path) -> None:
    drawing = tmp_path / "boxes.png"
    image = str(coco_val_image(139))
    result = viscover("detect", image, "--detector", "yolox_nano", "--json", "--draw", str(drawing), home=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout[: result.stdout.rindex("]") + 1])
    assert {"tv", "chair"} <= {r["label"] for r in rows} and all(r["score"] >= 0.5 for r in rows)
    assert Image.open(drawing).size == Image.open(image).size
    table = viscover("detect", "--min-score", "0.8", image, home=tmp_path)  # options before the image work too
    assert table.returncode == 0 and "yolox_nano, score >= 0.8" in table.stdout
    unknown = viscover("detect", image, "--detector", "yolo9000", home=tmp_path)
    assert unknown.returncode == 2 and "unknown detector 'yolo9000'" in unknown.stderr
    (tmp_path / "notes.jpg").write_text("not pixels")
    corrupt = viscover("detect", str(tmp_path / "notes.jpg"), home=tmp_path)
    assert corrupt.returncode == 2 and "not an image" in corrupt.stderr and "notes.jpg" in corrupt.stderr


def test_eval_detection_writes_table_3(coco_val_subset: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["eval", "detection", "--data", str(coco_val_subset), "--detectors", "ssd_mobilenet_v1_coco,yolox_nano"]
    result = viscover(*args, "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "IoU 0.7" in result.stdout and "IoU 0.5" in result.stdout and "Home decor" in result.stdout
    assert {p.name for p in out.iterdir()} == {
        "detection.md",
        "detection-iou0.7.csv",
        "detection-iou0.5.csv",
        "detection-pr.png",
    }
    bad = viscover(*args, "--groups", "Toys=teddy bear,lego", home=tmp_path)
    assert bad.returncode == 2 and "lego" in bad.stderr
    empty = viscover("eval", "detection", "--data", str(tmp_path / "results"), home=tmp_path)
    assert empty.returncode == 2 and "no COCO annotations" in empty.stderr


def test_detect_train_then_use_the_detector_by_name(coco_val_subset: Path, tmp_path: Path) -> None:
    train = viscover(
        "detect",
        "train",
        "--data",
        str(coco_val_subset),
        "--split",
        "val",
        "--name",
        "mini_frcnn",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--image-size",
        "256",
        home=tmp_path,
    )
    assert train.returncode == 0, train.stderr
    assert "mini_frcnn" in viscover("detectors", home=tmp_path).stdout
    detect = viscover("detect", str(coco_val_image(139)), "--detector", "mini_frcnn", "--min-score", "0", home=tmp_path)
    assert detect.returncode == 0 and "objects (mini_frcnn" in detect.stdout


def test_objects_then_object_search(coco_val_subset: Path, tmp_path: Path) -> None:
    assert viscover("ingest", str(coco_val_subset / "val2017"), home=tmp_path).returncode == 0
    objects = viscover("objects", "--detector", "yolox_nano", "--context", "0.1", home=tmp_path)
    assert objects.returncode == 0 and "4 pins detected" in objects.stdout, objects.stderr
    again = viscover("objects", "--detector", "yolox_nano", "--context", "0.1", home=tmp_path)
    assert "0 pins detected" in again.stdout  # resumable: nothing left to do
    assert "object index: " in viscover("info", home=tmp_path).stdout
    query = sorted((coco_val_subset / "val2017").iterdir())[0]
    search = viscover("--home", str(tmp_path), "search", str(query), "--objects", "--json", "-k", "2", home=tmp_path)
    rows = json.loads(search.stdout)
    assert rows[0]["location"] == str(query) and len(rows[0]["object"]["box"]) == 4
    outside = viscover("search", str(query), "--objects", "--crop", "600,400,100,100", home=tmp_path)
    assert outside.returncode == 2 and "outside" in outside.stderr


def test_flashlight_and_terms(indexed_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)
    query = str(caltech_image("Leopards", 21))
    quiet = {"VISCOVER_DOTS": "false", "VISCOVER_ANNOTATION_DEPTH": "5"}  # 6 pins a class: a big catalog's top 20
    look = json.loads(viscover("flashlight", query, "-k", "4", "--json", home=home, **quiet).stdout)
    assert [r["rank"] for r in look["results"]] == [1, 2, 3, 4] and look["dots"] is None
    assert look["annotations"][0]["term"] == "leopards" and look["annotations"][0]["score"] > 0
    table = viscover("flashlight", query, home=home, **quiet)
    assert table.returncode == 0 and table.stdout.startswith("annotations: leopards (")
    cropped = json.loads(viscover("flashlight", query, "--crop", "0,0,80,60", "--json", home=home).stdout)
    assert cropped["dots"] is None and cropped["results"]  # dots are for whole images

    # five categories of six pins: a dictionary of terms in >= 7 pins is empty, so nothing annotates
    built = viscover("terms", "--min-df", "7", home=home)
    assert built.returncode == 0 and "holds 0 terms" in built.stdout, built.stderr
    bare = json.loads(viscover("flashlight", query, "--json", home=home, **quiet).stdout)
    assert bare["annotations"] == []
    assert "holds 5 terms" in viscover("terms", "--min-df", "6", home=home).stdout
    bad = viscover("terms", "--min-df", "0", home=home)
    assert bad.returncode == 2 and "at least 1" in bad.stderr
