from __future__ import annotations

import faiss
import numpy as np
import pytest

from viscover.errors import BadArgumentError, NotEnoughDataError, UnknownNameError
from viscover.features import Binarizer, hamming_distances


@pytest.fixture(scope="module")
def relu_features() -> np.ndarray:
    """Non-negative, ReLU-pooled-like features with a few informative directions."""
    rng = np.random.default_rng(0)
    return np.maximum(rng.normal(0.5, 1.0, (400, 64)).astype(np.float32), 0) + 0.01


def test_sign_on_relu_features_gives_nearly_constant_bits(relu_features: np.ndarray) -> None:
    """The paper's pool5 failure: all features positive → every bit is 1."""
    codes = Binarizer("sign", None).fit_transform(relu_features)
    assert np.unpackbits(codes).mean() == 1.0


@pytest.mark.parametrize(("method", "bits"), [("median", None), ("median", 32), ("itq", 32)])
def test_learned_thresholds_give_balanced_bits(relu_features: np.ndarray, method: str, bits) -> None:
    binarizer = Binarizer(method, bits).fit(relu_features)
    codes = binarizer.transform(relu_features)
    assert codes.shape == (400, binarizer.code_bits_ // 8)
    assert binarizer.code_bits_ == (bits or 64)
    assert 0.4 < np.unpackbits(codes).mean() < 0.6


def test_round_trip_through_arrays(relu_features: np.ndarray) -> None:
    binarizer = Binarizer("itq", 32).fit(relu_features)
    restored = Binarizer.from_arrays(binarizer.to_arrays())
    assert np.array_equal(restored.transform(relu_features), binarizer.transform(relu_features))
    assert (restored.get_params(), restored.n_samples_fit_) == ({"method": "itq", "bits": 32}, 400)


def test_small_catalogs_learn_shorter_codes(relu_features: np.ndarray) -> None:
    assert Binarizer("itq", 32).fit(relu_features[:20]).code_bits_ == 16
    with pytest.raises(NotEnoughDataError, match="at least 9 vectors"):
        Binarizer("itq", 32).fit(relu_features[:5])


def test_bad_binarizer_arguments(relu_features: np.ndarray) -> None:
    with pytest.raises(UnknownNameError, match="unknown binarizer 'lsh'"):
        Binarizer("lsh").fit(relu_features)
    with pytest.raises(BadArgumentError, match="multiple of 8"):
        Binarizer("median", 12).fit(relu_features)


def test_bit_layout_matches_faiss_hamming(relu_features: np.ndarray) -> None:
    codes = Binarizer("median", None).fit_transform(relu_features)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    distances, ids = index.search(codes[:1], len(codes))
    mine = hamming_distances(codes[0], codes)
    assert np.array_equal(np.sort(mine), distances[0])
    assert np.array_equal(mine[ids[0]], distances[0])


def test_one_bit_per_dimension_pads_odd_widths(relu_features: np.ndarray) -> None:
    """An odd width (e.g. 101-class fine-tuned logits) is padded to whole bytes with zero bits."""
    binarizer = Binarizer("median", None).fit(relu_features[:, :37])
    assert binarizer.code_bits_ == 40
    codes = binarizer.transform(relu_features[:, :37])
    assert codes.shape == (400, 5) and not np.unpackbits(codes, axis=1, bitorder="little")[:, 37:].any()
    assert Binarizer("itq", 256).fit(relu_features[:, :37]).code_bits_ == 32  # a projection keeps whole bytes


def test_binarizer_is_a_scikit_learn_estimator(relu_features: np.ndarray) -> None:
    """scikit-learn's own tools take it: clone copies the parameters, a Pipeline fits and transforms it."""
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    binarizer = Binarizer("itq", 32)
    assert binarizer.fit(relu_features) is binarizer
    copy = clone(binarizer)
    assert copy.get_params() == {"method": "itq", "bits": 32} and not hasattr(copy, "code_bits_")
    codes = make_pipeline(StandardScaler(), Binarizer("median", 16)).fit_transform(relu_features)
    assert codes.shape == (400, 2) and codes.dtype == np.uint8
    assert repr(copy.set_params(bits=64)) == "Binarizer(method='itq', bits=64)"
