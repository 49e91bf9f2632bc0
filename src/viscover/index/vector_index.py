"""Search indexes chosen by FAISS factory string: binary ones ('BFlat', 'BIVF1024', 'BHNSW32') search
by Hamming distance, float ones ('Flat', 'HNSW32', …) by L2 or L1. Keys are catalog pin keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from viscover.errors import BadArgumentError, UnknownNameError

Metric = Literal["hamming", "l2", "l1"]
METRICS: tuple[str, ...] = ("hamming", "l2", "l1")
_FLOAT_METRICS = {"l2": faiss.METRIC_L2, "l1": faiss.METRIC_L1}


@dataclass
class VectorIndex:
    """A FAISS index whose ids are catalog keys; binary when `metric` is hamming."""

    spec: str
    metric: str
    dim: int  # bits for binary indexes, floats otherwise
    faiss_index: faiss.Index | faiss.IndexBinary

    @classmethod
    def create(cls, spec: str, metric: str, dim: int) -> VectorIndex:
        """An empty index; `spec` is a FAISS factory string ('B…' for binary)."""
        if metric not in METRICS:
            raise UnknownNameError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        binary = metric == "hamming"
        if binary != spec.startswith("B"):
            kind = "binary ('BFlat', 'BIVF…', 'BHNSW…')" if binary else "float ('Flat', 'HNSW32', …)"
            raise UnknownNameError(f"index {spec!r} cannot serve metric {metric}: use a {kind} index")
        try:
            if binary:
                inner = faiss.index_binary_factory(dim, spec)
                index = faiss.IndexBinaryIDMap2(inner)
            else:
                inner = faiss.index_factory(dim, spec, _FLOAT_METRICS[metric])
                index = faiss.IndexIDMap2(inner)
        except RuntimeError as exc:
            raise UnknownNameError(f"FAISS cannot build index {spec!r} for dimension {dim}: {exc}") from exc
        index.referenced_objects = [inner]  # the id map does not own `inner`: keep it alive with it
        return cls(spec, metric, dim, index)

    @property
    def binary(self) -> bool:
        return self.metric == "hamming"

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    def ids(self) -> np.ndarray:
        """The keys this index holds."""
        return faiss.vector_to_array(self.faiss_index.id_map)

    @property
    def lists(self) -> int:
        """The inverted lists of an IVF index (0 for other kinds)."""
        return int(getattr(self._inner(), "nlist", 0))

    def _inner(self) -> faiss.Index | faiss.IndexBinary:
        """The index inside the id map, as its own class (IVF, HNSW, flat)."""
        if self.binary:
            return faiss.downcast_IndexBinary(self.faiss_index.index)
        return faiss.downcast_index(self.faiss_index.index)

    def train(self, vectors: np.ndarray) -> None:
        """Learn what an approximate index needs (an IVF index's lists) from `vectors`, once; exact ones need
        nothing."""
        if self.faiss_index.is_trained or not len(vectors):
            return
        try:
            self.faiss_index.train(np.ascontiguousarray(vectors, dtype=np.uint8 if self.binary else np.float32))
        except RuntimeError as exc:
            reason = str(exc).rsplit("Error: ", 1)[-1].strip()  # FAISS's message, without its source location
            raise BadArgumentError(
                f"index {self.spec!r} cannot learn from {len(vectors)} vectors ({reason}): use fewer lists "
                "or BFlat for a catalog (or a shard) this small"
            ) from None

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (packed codes if binary), training the index on them first if it is not trained."""
        if not len(keys):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.uint8 if self.binary else np.float32)
        self.train(vectors)
        self.faiss_index.add_with_ids(vectors, np.asarray(keys, dtype=np.int64))

    def tune(self, nprobe: int, ef_search: int) -> None:
        """Set the search breadth of an approximate index: the inverted lists an IVF index visits per query, the
        candidates an HNSW index keeps while searching (more of either finds more, slower); exact ones ignore it."""
        inner = self._inner()
        if hasattr(inner, "nprobe"):
            inner.nprobe = nprobe
        if hasattr(inner, "hnsw"):
            inner.hnsw.efSearch = ef_search

    def remove(self, keys: np.ndarray) -> bool:
        """Remove keys; False when this index type cannot delete (the caller rebuilds instead)."""
        try:
            self.faiss_index.remove_ids(np.asarray(keys, dtype=np.int64))
        except RuntimeError:
            return False
        return True

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, keys), each (Q, k); missing neighbours have key -1."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8 if self.binary else np.float32)
        k = max(1, min(k, len(self))) if len(self) else 1
        distances, keys = self.faiss_index.search(queries, k)
        if self.metric == "l2":
            distances = np.sqrt(np.maximum(distances, 0))  # FAISS reports squared L2
        return distances.astype(np.float32), keys

    def to_bytes(self) -> np.ndarray:
        if self.binary:
            return faiss.serialize_index_binary(self.faiss_index)
        return faiss.serialize_index(self.faiss_index)

    @classmethod
    def from_bytes(cls, spec: str, metric: str, dim: int, data: np.ndarray) -> VectorIndex:
        data = np.asarray(data, dtype=np.uint8)
        index = faiss.deserialize_index_binary(data) if metric == "hamming" else faiss.deserialize_index(data)
        return cls(spec, metric, dim, index)
