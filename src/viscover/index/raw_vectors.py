"""Exact L2/L1 search over a catalog's float vectors without each process holding them all.

The unit vectors of one feature space are written once, chunk by chunk, to a NumPy file in a folder that is
renamed into place whole, with the keys beside it. Each search process memory-maps that file, so the OS keeps
one copy of its pages for every process. Search reads it a chunk at a time with FAISS's brute-force k-NN and
merges the chunks' answers by (distance, key), as the shards of a binary index merge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np

from viscover.index.shards import merge_nearest
from viscover.storage import atomic_folder

READ_CHUNK = 16_384  # vectors read from the catalog at a time while the file is written
SEARCH_CHUNK = 65_536  # rows one FAISS call compares the queries with (a view of the mapped file, not a copy)
KEYS, VECTORS = "keys.npy", "vectors.npy"
_FAISS_METRICS = {"l2": faiss.METRIC_L2, "l1": faiss.METRIC_L1}


class RawVectors:
    """Unit vectors and their keys in one folder of two `.npy` files, memory-mapped; searched exactly by L2
    or L1."""

    def __init__(self, keys: np.ndarray, vectors: np.ndarray, metric: str) -> None:
        self.keys, self.vectors, self.metric = keys, vectors, metric

    @classmethod
    def build(
        cls,
        folder: Path,
        ids: np.ndarray,
        read: Callable[[Sequence[int]], tuple[np.ndarray, np.ndarray]],
        metric: str,
    ) -> RawVectors:
        """Write the vectors `read(ids)` returns (scaled as `metric` searches them) and their keys into a new
        folder renamed to `folder` whole, reading `READ_CHUNK` at a time; then open it. When another process
        renamed its own first, that one is opened (both hold the same vectors). `ids` must all be readable."""
        with atomic_folder(folder, replace=False) as partial:
            np.save(partial / KEYS, np.asarray(ids, dtype=np.int64), allow_pickle=False)
            matrix = None
            for start in range(0, len(ids), READ_CHUNK):
                found, vectors = read(ids[start : start + READ_CHUNK].tolist())
                if len(found) != len(ids[start : start + READ_CHUNK]):
                    raise RuntimeError("stored vectors changed while the raw vectors were written")
                if matrix is None:
                    matrix = np.lib.format.open_memmap(
                        partial / VECTORS, "w+", np.float32, (len(ids), vectors.shape[1])
                    )
                matrix[start : start + len(found)] = vectors
            if matrix is None:
                raise ValueError("no vectors to write")
            matrix.flush()
            del matrix
        return cls.open(folder, metric)

    @classmethod
    def open(cls, folder: Path, metric: str) -> RawVectors:
        """The folder written by `build`, its vectors mapped read-only (FileNotFoundError if there is none,
        ValueError if its files do not belong together)."""
        keys, vectors = np.load(folder / KEYS), np.load(folder / VECTORS, mmap_mode="r")
        if len(keys) != len(vectors):
            raise ValueError(f"{folder}: {len(keys)} keys for {len(vectors)} vectors")
        return cls(keys, vectors, metric)

    def __len__(self) -> int:
        return len(self.keys)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, keys), each (Q, k), nearest first and by key among equals; `queries` already unit."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, len(self)))
        parts = []
        for start in range(0, len(self), SEARCH_CHUNK):
            chunk = self.vectors[start : start + SEARCH_CHUNK]
            distances, rows = faiss.knn(queries, chunk, min(k, len(chunk)), _FAISS_METRICS[self.metric])
            parts.append((distances, np.where(rows >= 0, self.keys[start + np.maximum(rows, 0)], -1)))
        distances, keys = merge_nearest(parts, len(queries), k)
        if self.metric == "l2":
            distances = np.sqrt(np.maximum(distances, 0))  # FAISS reports squared L2
        return distances, keys
