from __future__ import annotations

import faiss
import numpy as np
import pytest

from viscover.errors import UnknownNameError
from viscover.features import Binarizer, hamming_distances


@pytest.fixture(scope="module")
def relu_features() -> np.ndarray:
    """Non-negative, ReLU-pooled-like features with a few informative directions."""
    rng = np.random.default_rng(0)
    return np.maximum(rng.normal(0.5, 1.0, (400, 64)).astype(np.float32), 0) + 0.01


def test_sign_on_relu_features_gives_nearly_constant_bits(relu_features: np.ndarray) -> None:
    """The paper's pool5 failure: all features positive → every bit is 1."""
    codes = Binarizer.fit("sign", relu_features)(relu_features)
    assert np.unpackbits(codes).mean() == 1.0


@pytest.mark.parametrize(("method", "bits"), [("median", None), ("median", 32), ("itq", 32)])
def test_learned_thresholds_give_balanced_bits(relu_features: np.ndarray, method: str, bits) -> None:
    binarizer = Binarizer.fit(method, relu_features, bits)
    codes = binarizer(relu_features)
    assert codes.shape == (400, binarizer.bits // 8)
    assert binarizer.bits == (bits or 64)
    assert 0.4 < np.unpackbits(codes).mean() < 0.6


def test_round_trip_through_arrays(relu_features: np.ndarray) -> None:
    binarizer = Binarizer.fit("itq", relu_features, 32)
    restored = Binarizer.from_arrays(binarizer.to_arrays())
    assert np.array_equal(restored(relu_features), binarizer(relu_features))


def test_small_catalogs_learn_shorter_codes(relu_features: np.ndarray) -> None:
    assert Binarizer.fit("itq", relu_features[:20], 32).bits == 16
    with pytest.raises(ValueError, match="at least 9 vectors"):
        Binarizer.fit("itq", relu_features[:5], 32)


def test_bad_binarizer_arguments(relu_features: np.ndarray) -> None:
    with pytest.raises(UnknownNameError, match="unknown binarizer 'lsh'"):
        Binarizer.fit("lsh", relu_features)
    with pytest.raises(ValueError, match="multiple of 8"):
        Binarizer.fit("median", relu_features, 12)


def test_bit_layout_matches_faiss_hamming(relu_features: np.ndarray) -> None:
    codes = Binarizer.fit("median", relu_features)(relu_features)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    distances, ids = index.search(codes[:1], len(codes))
    mine = hamming_distances(codes[0], codes)
    assert np.array_equal(np.sort(mine), distances[0])
    assert np.array_equal(mine[ids[0]], distances[0])


def test_one_bit_per_dimension_pads_odd_widths(relu_features: np.ndarray) -> None:
    """An odd width (e.g. 101-class fine-tuned logits) is padded to whole bytes with zero bits."""
    binarizer = Binarizer.fit("median", relu_features[:, :37])
    assert binarizer.bits == 40
    codes = binarizer(relu_features[:, :37])
    assert codes.shape == (400, 5) and not np.unpackbits(codes, axis=1, bitorder="little")[:, 37:].any()
    assert Binarizer.fit("itq", relu_features[:, :37], 256).bits == 32  # a projection keeps whole bytes
