"""Raw features → packed binary codes (section 4 of the paper).

`sign` is the paper's threshold at zero. It fails on ReLU-pooled features (ResNet pool5, EfficientNet's
ReLU6 head), which are almost never negative; `median` (per-dimension median thresholds) and `itq`
(PCA + iterative quantization, Gong & Lazebnik 2011, via FAISS) learn thresholds from the catalog.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from viscover.errors import UnknownNameError

log = logging.getLogger(__name__)

BinarizerMethod = Literal["sign", "median", "itq"]
METHODS: tuple[str, ...] = ("sign", "median", "itq")


@dataclass
class Binarizer:
    """A fitted map from float vectors to packed bit codes of `bits` bits (a multiple of 8)."""

    method: str
    bits: int
    transform: faiss.VectorTransform | None  # PCA or ITQ projection learned from the catalog
    thresholds: np.ndarray  # one per output dimension

    @classmethod
    def fit(cls, method: str, vectors: np.ndarray, bits: int | None = None) -> Binarizer:
        """Learn the binarizer from catalog vectors; `bits=None` keeps one bit per feature dimension."""
        if method not in METHODS:
            raise UnknownNameError(f"unknown binarizer {method!r}; choose one of {', '.join(METHODS)}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        count, dim = vectors.shape
        if bits is not None and (bits <= 0 or bits % 8):
            raise ValueError(f"code length must be a positive multiple of 8 bits, got {bits}")
        want = dim if bits is None else bits  # one bit per dimension is padded up to whole bytes
        transform: faiss.VectorTransform | None = None
        out = want
        if method == "itq" or want < dim:
            # A learned projection needs at least as many samples as output dimensions.
            out = min(want, dim // 8 * 8, (count - 1) // 8 * 8)
            if out < 8:
                raise ValueError(f"{method} binarizer needs at least 9 vectors to learn from, got {count}")
            if out < want:
                log.warning("only %d vectors: learning %d-bit codes instead of %d", count, out, want)
            transform = faiss.ITQTransform(dim, out, True) if method == "itq" else faiss.PCAMatrix(dim, out)
            transform.train(vectors)
            projected = transform.apply(vectors)
        else:
            projected = vectors
        if method == "median":
            thresholds = np.median(projected, axis=0).astype(np.float32)
        else:
            thresholds = np.zeros(projected.shape[1], np.float32)
        return cls(method, out if transform is not None else _round_up8(dim), transform, thresholds)

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) float → (N, bits/8) uint8 codes, bit i of a code in byte i//8 (FAISS's layout)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.transform is not None:
            vectors = self.transform.apply(vectors)
        bits = vectors > self.thresholds
        pad = self.bits - bits.shape[1]
        if pad:
            bits = np.pad(bits, ((0, 0), (0, pad)))
        return np.packbits(bits, axis=1, bitorder="little")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this binarizer, as arrays for one .npz file."""
        arrays = {"method": np.array(self.method), "bits": np.array(self.bits), "thresholds": self.thresholds}
        if self.transform is not None:
            writer = faiss.VectorIOWriter()
            faiss.write_VectorTransform(self.transform, writer)
            arrays["transform"] = faiss.vector_to_array(writer.data)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Binarizer:
        transform = None
        if "transform" in arrays:
            reader = faiss.VectorIOReader()
            faiss.copy_array_to_vector(np.asarray(arrays["transform"], np.uint8), reader.data)
            transform = faiss.read_VectorTransform(reader)
        return cls(str(arrays["method"]), int(arrays["bits"]), transform, np.asarray(arrays["thresholds"]))


def _round_up8(n: int) -> int:
    return -(-n // 8) * 8


def hamming_distances(query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hamming distance from one packed code to each row of `codes` (small sets: dedup, tests)."""
    return np.unpackbits(np.bitwise_xor(codes, query[None, :]), axis=1).sum(axis=1)
