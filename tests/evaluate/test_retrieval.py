from __future__ import annotations

import numpy as np
import pytest

from viscover.errors import NotEnoughDataError
from viscover.evaluate import average_precision_at_k, precision_at_k, sample_queries, score_retrieval
from viscover.index import VectorIndex


def line_index() -> tuple[VectorIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Points on a line, so the ranking is known by hand: 0, 1, 2, 10, 11, 12 with labels a a b b b a."""
    data = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]], dtype=np.float32)
    keys = np.arange(100, 106)
    labels = np.array(["a", "a", "b", "b", "b", "a"])
    index = VectorIndex.create("Flat", "l2", 1)
    index.add(keys, data)
    return index, data, keys, labels


def test_hand_computed_precision_with_the_query_excluded() -> None:
    index, data, keys, labels = line_index()
    # query 0 ("a"): others by distance 1(a), 2(b), 10(b) → relevance 1,0,0
    # query 3 ("b"): others 11(b), 12(a), 2(b) → 1,0,1
    scores = score_retrieval(index, data, keys, labels, np.array([0, 3]), ks=[1, 3])
    assert scores.precision == {1: pytest.approx(1.0), 3: pytest.approx((1 / 3 + 2 / 3) / 2)}
    # AP@3: query 0 → 1/1 = 1; query 3 → (1/1 + 2/3) / 2 = 5/6
    assert scores.mean_average_precision[3] == pytest.approx((1 + 5 / 6) / 2)


def test_precision_and_ap_arithmetic() -> None:
    relevant = np.array([[True, False, True, False], [False, False, False, False]])
    assert precision_at_k(relevant, 4) == pytest.approx(0.25)
    assert average_precision_at_k(relevant, 4) == pytest.approx(((1 + 2 / 3) / 2 + 0) / 2)


def test_query_sampling_is_seeded_and_skips_clutter() -> None:
    labels = ["a", "BACKGROUND_Google", "b", None, "a", "b"] * 5
    first = sample_queries(labels, 10, seed=3, exclude=["BACKGROUND_Google"])
    assert np.array_equal(first, sample_queries(labels, 10, seed=3, exclude=["BACKGROUND_Google"]))
    assert all(labels[i] in {"a", "b"} for i in first) and len(set(first.tolist())) == 10
    assert len(sample_queries(labels, 1000, seed=0)) == 25  # capped at the labelled items


def test_k_larger_than_the_index_is_refused() -> None:
    index, data, keys, labels = line_index()
    with pytest.raises(NotEnoughDataError, match="K=6 needs more than 6"):
        score_retrieval(index, data, keys, labels, np.array([0]), ks=[6])
