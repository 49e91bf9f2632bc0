"""Table 3's arithmetic on hand-made boxes: perfect, shifted, duplicated, crowd and grouped cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viscover import Box
from viscover.detect import AnnotatedImage, Detection, DetectionDataset
from viscover.errors import BadArgumentError, UnknownNameError
from viscover.evaluate.detection import (
    DetectionStudy,
    DetectorRun,
    check_groups,
    match_run,
    parse_groups,
    write_detection_report,
)

CLASSES = ("car", "chair", "tie", "person")


def dataset() -> DetectionDataset:
    images = [
        AnnotatedImage(Path("a.jpg"), np.array([[0, 0, 100, 100], [200, 200, 300, 260]], float), ("car", "chair")),
        AnnotatedImage(Path("b.jpg"), np.array([[10, 10, 50, 90]], float), ("tie",)),
        AnnotatedImage(
            Path("c.jpg"),
            np.array([[0, 0, 40, 40], [100, 100, 400, 400]], float),
            ("person", "person"),
            crowd=np.array([False, True]),
        ),
    ]
    return DetectionDataset("hand-made", CLASSES, images)


def perfect_run(data: DetectionDataset) -> DetectorRun:
    detections = [
        [
            Detection(Box(*box), label, 0.9)
            for box, label, crowd in zip(i.boxes, i.labels, i.crowd, strict=True)
            if not crowd
        ]
        for i in data.images
    ]
    return DetectorRun("perfect", detections, [0.01, 0.02, 0.03])


def test_a_perfect_detector_scores_one() -> None:
    data = dataset()
    for iou in (0.5, 0.7, 0.95):
        matching = match_run(perfect_run(data), data, iou)
        assert matching.precision_recall(None, 0.5)[:2] == (1.0, 1.0)
    assert perfect_run(data).median_latency_ms == pytest.approx(20.0)


def test_a_shifted_box_counts_at_iou_0_5_but_not_0_7() -> None:
    data = dataset()
    run = perfect_run(data)
    # shift the car 25 px right: IoU = 75*100 / (125*100) = 0.6
    run.detections[0][0] = Detection(Box(25, 0, 125, 100), "car", 0.9)
    strict = match_run(run, data, 0.7)
    loose = match_run(run, data, 0.5)
    assert strict.precision_recall(["car"], 0.5)[:2] == (0.0, 0.0)
    assert loose.precision_recall(["car"], 0.5)[:2] == (1.0, 1.0)
    p, r, found, truths = strict.precision_recall(None, 0.5)
    assert (found, truths) == (4, 4) and p == r == pytest.approx(3 / 4)


def test_duplicates_wrong_labels_thresholds_and_crowds() -> None:
    data = dataset()
    run = perfect_run(data)
    run.detections[0].append(Detection(Box(0, 0, 100, 100), "car", 0.8))  # duplicate: a miss
    run.detections[1].append(Detection(Box(10, 10, 50, 90), "person", 0.3))  # wrong label, below 0.5
    run.detections[2].append(Detection(Box(110, 110, 390, 390), "person", 0.95))  # on the crowd: ignored
    matching = match_run(run, data, 0.7)
    assert matching.precision_recall(None, 0.5)[:3] == (4 / 5, 1.0, 5)
    assert matching.precision_recall(None, 0.0)[:3] == (4 / 6, 1.0, 6)
    assert matching.precision_recall(None, 0.85)[:3] == (1.0, 1.0, 4)
    precision, recall = matching.curve()
    np.testing.assert_allclose(recall[-1], 1.0)
    np.testing.assert_allclose(precision, [1, 1, 1, 1, 4 / 5, 4 / 6])


def test_groups_are_parsed_and_checked() -> None:
    groups = parse_groups("Fashion=tie; Vehicles=car,bus")
    assert groups == {"Fashion": ("tie",), "Vehicles": ("car", "bus")}
    with pytest.raises(UnknownNameError, match="bus"):
        check_groups(groups, CLASSES)
    with pytest.raises(BadArgumentError, match="NAME=label"):
        parse_groups("Fashion")


def test_report_tables_and_plot(tmp_path: Path) -> None:
    data = dataset()
    blind = DetectorRun("blind", [[], [], []], [0.01, 0.01, 0.01])  # finds nothing: precision is undefined
    groups = {"Fashion": ("tie",), "Vehicles": ("car",)}
    study = DetectionStudy(data, [perfect_run(data), blind], [0.7, 0.5], 0.5, groups)
    text = write_detection_report(study, tmp_path, "viscover eval detection …")
    assert "Fashion" in text and "Overall" in text and "20 ms" in text
    markdown = (tmp_path / "detection.md").read_text()
    assert "## IoU 0.7" in markdown and "## IoU 0.5" in markdown and "viscover eval detection" in markdown
    assert (tmp_path / "detection-iou0.7.csv").read_text().splitlines()[1] == "Fashion,1,1.000,1.000,n/a,0.000"
    assert (tmp_path / "detection-pr.png").stat().st_size > 10_000
