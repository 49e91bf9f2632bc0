"""The Flashlight evaluations: the judging arithmetic on hand-made candidates, the leak-proof splits, and both
commands end to end on small real subsets (real detector, real backbone)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import COCO128, COCO_MINI, SHARED
from viscover.detect import AnnotatedImage
from viscover.evaluate.bootstrap import bootstrap_interval
from viscover.evaluate.corpora import Item, split_items
from viscover.flashlight.evaluate_dots import HIDDEN, IGNORED, USEFUL, WRONG, Candidates, DotsStudy, Scene, tune

VISCOVER = Path(sys.executable).parent / "viscover"


def scene() -> Scene:
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]], dtype=float)
    truth = AnnotatedImage(Path("s.jpg"), boxes, ("cat", "dog", "cat", "yak"), np.array([False, False, True, False]))
    return Scene("s.jpg", truth)


def candidates() -> Candidates:
    # rows: detector, similarity, annotation, conformity, largest share (the paper's conformity)
    signals = np.array(
        [
            [0.9, 0.8, 2.0, 0.9, 0.9],  # on cat box 0, its results truly cats: useful
            [0.8, 0.7, 1.0, 0.3, 0.9],  # on cat box 0 too: the box is taken, so wrong
            [0.7, 0.6, 1.0, 0.8, 0.5],  # on the dog, results not dogs: wrong
            [0.6, 0.5, 1.0, 0.8, 0.5],  # on the crowd region: ignored
            [0.5, 0.5, 1.0, 0.8, 0.5],  # on the yak, too rare to judge: ignored
            [0.4, 0.2, 0.1, 0.2, 1.0],  # on nothing: wrong
        ]
    )
    overlaps = {iou: [[0], [0], [1], [2], [3], []] for iou in (0.5, 0.7)}
    support = [{"cat": 0.8}, {"cat": 0.8}, {"dog": 0.3}, {}, {"yak": 1.0}, {}]
    return Candidates([scene()], np.zeros(6, dtype=int), signals, overlaps, support, frozenset({"cat", "dog"}))


def test_greedy_judgement_of_shown_dots() -> None:
    c = candidates()
    everything = np.ones(6, dtype=bool)
    assert c.outcomes(everything, 0.5).tolist() == [USEFUL, WRONG, WRONG, IGNORED, IGNORED, WRONG]
    without_first = everything.copy()
    without_first[0] = False  # the second dot now gets the cat box
    assert c.outcomes(without_first, 0.5).tolist()[:2] == [HIDDEN, USEFUL]
    tally = c.tally(everything, 0.5)
    precision, recall, dots = tally.rates()
    assert (precision, recall, dots) == (1 / 4, 1 / 2, 6.0)  # 2 judged objects: cat box 0 and the dog


def test_tuning_finds_the_conformity_that_drops_the_duplicate() -> None:
    thresholds = tune(candidates(), ("detector", "conformity"), floor=0.25, beta=0.5)
    c = candidates()
    shown = c.shown(thresholds)
    assert shown[0] and not shown[1] and not shown[5]
    assert c.tally(shown, 0.5).rates()[0] > c.tally(np.ones(6, dtype=bool), 0.5).rates()[0]


def test_ceiling_is_the_best_ratio_over_the_detector_alone_at_a_dot_rate() -> None:
    c = candidates()
    study = DotsStudy(c, c, {}, 0, 0, floor=0.25, beta=0.5, conformity="label", conformity_depth=10)
    # conformity >= 0.8 drops the duplicate: 1 useful of 2 judged against the top 3 or 4 by score's 1 of 3
    ceilings = study.ceilings((0.0, 5.0, 7.0), min_dots=2)
    ratio, thresholds, dots = ceilings[0.0]
    assert ratio == pytest.approx(1.5) and thresholds["conformity"] > 0.3 and dots >= 3
    assert ceilings[5.0][0] == pytest.approx(1.0)  # five dots or more: the same boxes
    assert ceilings[7.0] is None


def test_bootstrap_interval_brackets_the_mean() -> None:
    values = np.arange(100, dtype=float)
    low, high = bootstrap_interval(100, lambda idx: values[idx].mean(), draws=200)
    assert low < values.mean() < high and high - low < 20
    assert all(np.isnan(v) for v in bootstrap_interval(0, lambda idx: 0.0))


def test_held_out_rooms_never_reach_the_catalog() -> None:
    rooms = [f"room{i}" for i in range(10)]
    boards = [(rooms[i % 10],) if i < 20 else (rooms[i % 10], rooms[(i + 1) % 10]) for i in range(40)]
    items = [Item(f"p{i}", "x.jpg", "", None, b, b) for i, b in enumerate(boards)]
    split = split_items(items, holdout=0.4, seed=1)
    held = {b for item in split.dev + split.test for b in item.boards}
    assert split.dev and split.test and held
    assert not {b for item in split.catalog for b in item.boards} & held  # no roommate of a query either
    assert not {i.pin_id for i in split.catalog} & {i.pin_id for i in split.dev + split.test}
    straddling = [i for i in items if set(i.boards) & held and set(i.boards) - held]
    placed = {i.pin_id for i in split.catalog + split.dev + split.test}
    assert straddling and not {i.pin_id for i in straddling} & placed
    dev_rooms = {b for i in split.dev for b in i.boards}
    assert not dev_rooms & {b for i in split.test for b in i.boards}


def viscover(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VISCOVER_MODELS_DIR": str(SHARED / "models")}
    return subprocess.run(
        [str(VISCOVER), "--home", str(home), "-q", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_eval_dots_writes_table_5_and_applies_thresholds(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = viscover(
        "eval", "dots", "--tune-data", str(COCO128), "--report-data", str(COCO_MINI), "--scenes", "8",
        "--min-instances", "3", "--draws", "20", "--out", str(out), "--apply", home=tmp_path / "home",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (out / "dots.md").read_text()
    rows = ("no filter", "detector score alone", "visual only", "annotation only", "all three, the paper's conformity")
    for row in (*rows, "all three"):
        assert f"| {row} |" in report
    assert "precision ratio" in report and "ROC AUC" in report and "best tune ratio" in report
    rows = list(csv.DictReader((out / "dots.csv").read_text().splitlines()))
    assert {r["split"] for r in rows} == {"report", "tune"} and {r["iou"] for r in rows} == {"0.5", "0.7"}
    assert (out / "dots-roc.png").stat().st_size > 0 and (out / "dots-precision.png").stat().st_size > 0
    saved = json.loads((tmp_path / "home" / "flashlight" / "dots.json").read_text())
    assert saved["version"] == 2 and set(saved["thresholds"]) == {"detector", "similarity", "annotation", "conformity"}
    assert saved["conformity"] == {"measure": "label", "depth": 10}  # what the thresholds were tuned for


def test_eval_annotations_on_both_data_sets(tmp_path: Path) -> None:
    out = tmp_path / "results"
    datasets = SHARED / "datasets"
    result = viscover(
        "eval", "annotations", str(datasets / "fashion-small"), str(datasets / "ikea-rooms"), "--limit", "300",
        "--draws", "20", "--out", str(out), home=tmp_path / "home",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (out / "annotations.md").read_text()
    assert "## fashion-small" in report and "## ikea-rooms" in report
    for ranker in ("tfidf", "similarity", "neighbour votes", "most frequent"):
        assert f"| {ranker} |" in report
    assert "category P@10 after the top chip" in report
    assert (out / "annotations-score.png").stat().st_size > 0


def test_eval_annotations_refuses_an_unknown_data_set(tmp_path: Path) -> None:
    result = viscover("eval", "annotations", str(tmp_path), home=tmp_path / "home")
    assert result.returncode == 2 and "not a data set eval annotations knows" in result.stderr
