"""Raw features → packed binary codes (section 4 of the paper).

`sign` is the paper's threshold at zero. It fails on ReLU-pooled features (ResNet pool5, EfficientNet's
ReLU6 head), which are almost never negative; `median` (per-dimension median thresholds) and `itq`
(PCA + iterative quantization, Gong & Lazebnik 2011, via FAISS) learn thresholds from the catalog.
"""

from __future__ import annotations

import logging
from typing import Literal

import faiss
import numpy as np

from viscover.errors import BadArgumentError, NotEnoughDataError, UnknownNameError

log = logging.getLogger(__name__)

BinarizerMethod = Literal["sign", "median", "itq"]
METHODS: tuple[str, ...] = ("sign", "median", "itq")


class Binarizer:
    """A scikit-learn-style transformer from float vectors to packed bit codes: `Binarizer(method, bits)
    .fit(X)` learns from catalog vectors and returns itself, `transform(X)` gives (N, code_bits_/8) uint8.

    `bits=None` keeps one bit per feature dimension. Fitted attributes end in `_`: `code_bits_` (the code
    length learned, a multiple of 8), `projection_` (PCA or ITQ, or None), `thresholds_`, `n_samples_fit_`.
    It follows scikit-learn's estimator protocol without importing scikit-learn, which costs a search
    half a second at start-up."""

    def __init__(self, method: str = "itq", bits: int | None = 256) -> None:
        self.method = method
        self.bits = bits

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {"method": self.method, "bits": self.bits}

    def set_params(self, **params: object) -> Binarizer:
        for name, value in params.items():
            if name not in ("method", "bits"):
                raise BadArgumentError(f"Binarizer has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return f"Binarizer(method={self.method!r}, bits={self.bits!r})"

    def fit(self, vectors: np.ndarray, y: object = None) -> Binarizer:
        """Learn thresholds (and a projection for itq, or when fewer bits than dimensions are asked for)."""
        if self.method not in METHODS:
            raise UnknownNameError(f"unknown binarizer {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.bits is not None and (self.bits <= 0 or self.bits % 8):
            raise BadArgumentError(f"code length must be a positive multiple of 8 bits, got {self.bits}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        count, dim = vectors.shape
        want = dim if self.bits is None else self.bits  # one bit per dimension is padded up to whole bytes
        projection: faiss.VectorTransform | None = None
        if self.method == "itq" or want < dim:
            # A learned projection needs at least as many samples as output dimensions.
            out = min(want, dim // 8 * 8, (count - 1) // 8 * 8)
            if out < 8:
                raise NotEnoughDataError(f"{self.method} binarizer needs at least 9 vectors to learn from, got {count}")
            if out < want:
                log.warning("only %d vectors: learning %d-bit codes instead of %d", count, out, want)
            projection = faiss.ITQTransform(dim, out, True) if self.method == "itq" else faiss.PCAMatrix(dim, out)
            projection.train(vectors)
            projected = projection.apply(vectors)
        else:
            projected = vectors
        if self.method == "median":
            self.thresholds_ = np.median(projected, axis=0).astype(np.float32)
        else:
            self.thresholds_ = np.zeros(projected.shape[1], np.float32)
        self.projection_ = projection
        self.code_bits_ = projected.shape[1] if projection is not None else -(-dim // 8) * 8
        self.n_samples_fit_ = count
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) float → (N, code_bits_/8) uint8 codes, bit i of a code in byte i//8 (FAISS's layout)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.projection_ is not None:
            vectors = self.projection_.apply(vectors)
        bits = vectors > self.thresholds_
        pad = self.code_bits_ - bits.shape[1]
        if pad:
            bits = np.pad(bits, ((0, 0), (0, pad)))
        return np.packbits(bits, axis=1, bitorder="little")

    def fit_transform(self, vectors: np.ndarray, y: object = None) -> np.ndarray:
        return self.fit(vectors).transform(vectors)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this fitted binarizer, as arrays for one .npz file."""
        arrays = {
            "method": np.array(self.method),
            "bits": np.array(-1 if self.bits is None else self.bits),
            "code_bits": np.array(self.code_bits_),
            "n_samples_fit": np.array(self.n_samples_fit_),
            "thresholds": self.thresholds_,
        }
        if self.projection_ is not None:
            writer = faiss.VectorIOWriter()
            faiss.write_VectorTransform(self.projection_, writer)
            arrays["transform"] = faiss.vector_to_array(writer.data)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Binarizer:
        bits = int(arrays["bits"])
        binarizer = cls(str(arrays["method"]), None if bits < 0 else bits)
        binarizer.projection_ = None
        if "transform" in arrays:
            reader = faiss.VectorIOReader()
            faiss.copy_array_to_vector(np.asarray(arrays["transform"], np.uint8), reader.data)
            binarizer.projection_ = faiss.read_VectorTransform(reader)
        binarizer.thresholds_ = np.asarray(arrays["thresholds"])
        binarizer.code_bits_ = int(arrays["code_bits"])
        binarizer.n_samples_fit_ = int(arrays["n_samples_fit"])
        return binarizer


def hamming_distances(query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hamming distance from one packed code to each row of `codes` (small sets: dedup, tests)."""
    return _POPCOUNT[np.bitwise_xor(codes, query[None, :])].sum(axis=1, dtype=np.int64)


_POPCOUNT = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)  # set bits of each byte
