"""Box geometry and the paper's dominant-object rule, on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from viscover import Box
from viscover.detect import Detection, box_iou, dominant_object
from viscover.errors import BadCropError


def test_dominant_object_is_the_largest_box_when_it_covers_a_quarter() -> None:
    small = Detection(Box(0, 0, 10, 10), "cup", 0.6)
    large = Detection(Box(0, 0, 50, 50), "chair", 0.5)  # 2,500 of 10,000 pixels: exactly 25 %
    assert dominant_object([small, large], 100, 100) is large
    assert dominant_object([Detection(Box(0, 0, 49, 50), "chair", 0.5)], 100, 100) is None  # 24.5 %


def test_dominant_object_by_confidence_and_thresholds_are_configurable() -> None:
    confident = Detection(Box(0, 0, 20, 20), "bag", 0.95)
    assert dominant_object([confident], 100, 100) is confident
    assert dominant_object([confident], 100, 100, min_score=0.99) is None
    assert dominant_object([confident], 100, 100, min_area=0.04) is confident
    # the rule looks at the largest box only: a confident small box beside a large weak one does not count
    weak_large = Detection(Box(0, 0, 40, 40), "chair", 0.4)
    assert dominant_object([confident, weak_large], 100, 100) is None
    assert dominant_object([], 100, 100) is None


def test_padded_box_adds_context_and_stays_inside() -> None:
    assert Box(10, 20, 30, 60).padded(0.25, 100, 100) == Box(5, 10, 35, 70)
    assert Box(0, 0, 100, 50).padded(0.5, 100, 80) == Box(0, 0, 100, 75)
    assert Box(10.5, 20, 30, 60).padded(0.0, 100, 100) == Box(10, 20, 30, 60)  # whole pixels


def test_one_box_serves_crops_and_detections() -> None:
    crop = Box.parse("10,20,30,40")
    assert crop == Box(10, 20, 40, 60) and str(crop) == "10,20,30,40" and crop.area == 1200
    assert Image.new("RGB", (100, 80)).crop(crop.check_inside(100, 80).pixels()).size == (30, 40)
    assert Box(0.4, 0, 0.6, 1).pixels() == (0, 0, 1, 1)  # a sliver still covers a whole pixel
    assert list(Box(1, 2, 3, 4)) == [1, 2, 3, 4]


def test_box_iou_by_hand() -> None:
    a = np.array([list(Box(0, 0, 10, 10))])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])
    assert box_iou(a, np.zeros((0, 4))).shape == (1, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,0,10", "four numbers"),
        ("a,b,c,d", "four numbers"),
        ("1,2,nan,4", "four numbers"),
        ("5,5,0,4", "no area"),
        ("5,5,-3,4", "no area"),
        ("-1,0,10,10", "outside the 50x40"),
        ("0,0,10,41", "outside"),
    ],
)
def test_bad_boxes_are_named(text: str, message: str) -> None:
    with pytest.raises(BadCropError, match=message):
        Box.parse(text).check_inside(50, 40)
