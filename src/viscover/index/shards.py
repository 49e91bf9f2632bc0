"""A binary index split into shards for serving beyond one machine (issue 15): each pin goes to shard
`key % S` (its catalog key: stable across processes and runs, unlike Python's salted `hash()`), each shard is a
native FAISS binary index file written and read by FAISS's own functions, and the binarizer lies beside them.
`ShardedIndex` searches every shard and merges by (distance, key), so it answers as the single index does and
can stand wherever a `VectorIndex` of codes does. Only exact (`BFlat`) indexes are sharded: an approximate one
would learn its lists or graph again per shard and answer differently.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from viscover.errors import BadArgumentError, NotIndexedError
from viscover.features.binarize import Binarizer
from viscover.index.vector_index import VectorIndex
from viscover.index.visual_index import VisualIndex

MANIFEST = "shards.json"
BINARIZER = "binarizer.npz"
FORMAT_VERSION = 1


def shard_of(keys: np.ndarray, shards: int) -> np.ndarray:
    """The shard of each pin key."""
    return np.asarray(keys, dtype=np.int64) % shards


def shard_file(shard: int, shards: int) -> str:
    return f"shard-{shard:04d}-of-{shards:04d}.faissb"


@dataclass
class ShardedIndex:
    """Binary codes spread over shards (each a `VectorIndex`), searched together as one index."""

    spec: str
    dim: int
    shards: list[VectorIndex]
    metric: str = "hamming"

    @property
    def binary(self) -> bool:
        return True

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards)

    def ids(self) -> np.ndarray:
        return np.concatenate([shard.ids() for shard in self.shards]) if self.shards else np.zeros(0, np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, keys), each (Q, k), nearest first and by key among equals; missing neighbours are -1."""
        parts = [shard.search(queries, k) for shard in self.shards if len(shard)]
        return merge_nearest(parts, len(queries), min(k, len(self)))


def merge_nearest(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], queries: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest of the shards' answers (each `(distances, keys)`, Q rows), by (distance, key); keys of
    missing neighbours (-1) go last. Scatter-gather over processes and machines merges the same way."""
    width = max(1, k)
    if not parts:
        return np.full((queries, width), np.inf, np.float32), np.full((queries, width), -1, np.int64)
    distances = np.concatenate([d for d, _ in parts], axis=1)
    keys = np.concatenate([i for _, i in parts], axis=1)
    missing = keys < 0
    distances = np.where(missing, np.inf, distances).astype(np.float32)
    ranked_keys = np.where(missing, np.iinfo(np.int64).max, keys)
    merged_d = np.full((queries, width), np.inf, np.float32)
    merged_k = np.full((queries, width), -1, np.int64)
    for row in range(queries):
        order = np.lexsort((ranked_keys[row], distances[row]))[:width]
        merged_d[row, : len(order)], merged_k[row, : len(order)] = distances[row][order], keys[row][order]
    return merged_d, merged_k


def stored_codes(codes: VectorIndex) -> np.ndarray:
    """The packed codes an exact binary index holds, in the order of its `ids()`."""
    inner = faiss.downcast_IndexBinary(codes.faiss_index.index)
    return inner.reconstruct_n(0, len(codes)) if len(codes) else np.zeros((0, codes.dim // 8), np.uint8)


def write_shards(index: VisualIndex, directory: Path, shards: int) -> Path:
    """Split `index` into `shards` FAISS binary index files under `directory` (one task per shard), with its
    binarizer and a manifest beside them; the manifest is written last, so a directory with one is whole."""
    if isinstance(index.codes, ShardedIndex):
        raise BadArgumentError("the index is sharded already")
    if index.codes.spec != "BFlat":
        raise BadArgumentError(
            f"only exact BFlat indexes are sharded, not {index.codes.spec!r}: an approximate index would learn "
            "again per shard and answer differently"
        )
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 4096:
        raise BadArgumentError(f"shards must be a whole number from 1 to 4096, got {shards!r}")
    # written whole into a fresh folder, then moved into place: a reader never sees a half-written split
    building = directory.with_name(f".{directory.name}.{os.getpid()}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    keys, codes = index.codes.ids(), stored_codes(index.codes)
    home = shard_of(keys, shards)

    def write(shard: int) -> None:
        part = VectorIndex.create(index.codes.spec, "hamming", index.bits)
        mine = home == shard
        part.add(keys[mine], codes[mine])
        faiss.write_index_binary(part.faiss_index, str(building / shard_file(shard, shards)))

    with ThreadPoolExecutor(min(shards, 4)) as pool:
        list(pool.map(write, range(shards)))
    with (building / BINARIZER).open("wb") as handle:
        np.savez(handle, **index.binarizer.to_arrays())
    manifest = {
        "version": FORMAT_VERSION,
        "model": index.model,
        "spec": index.codes.spec,
        "bits": index.bits,
        "fitted_on": index.fitted_on,
        "shards": shards,
        "pins": len(keys),
    }
    (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if directory.exists():
        shutil.rmtree(directory)
    building.rename(directory)
    return directory


def read_shards(directory: Path, only: Sequence[int] | None = None, count: int | None = None) -> VisualIndex:
    """The sharded index under `directory` (only the shards `only`, when given: what one server holds; split
    into `count` shards, when the caller expects a split)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise NotIndexedError(f"no sharded index in {directory}: run `viscover shard` first") from None
    if manifest.get("version") != FORMAT_VERSION:
        raise NotIndexedError(f"{directory / MANIFEST} is format {manifest.get('version')!r}; run `viscover shard`")
    if count is not None and manifest["shards"] != count:
        raise BadArgumentError(f"{directory} now holds {manifest['shards']} shards, not the {count} expected")
    count = manifest["shards"]
    wanted = range(count) if only is None else only
    if any(not 0 <= shard < count for shard in wanted):
        raise BadArgumentError(f"shards {list(wanted)} are not all among the {count} of {directory}")
    parts = [
        VectorIndex(
            manifest["spec"],
            "hamming",
            manifest["bits"],
            faiss.read_index_binary(str(directory / shard_file(shard, count))),
        )
        for shard in wanted
    ]
    with np.load(directory / BINARIZER) as arrays:
        binarizer = Binarizer.from_arrays({name: arrays[name] for name in arrays.files})
    codes = ShardedIndex(manifest["spec"], manifest["bits"], parts)
    return VisualIndex(manifest["model"], binarizer, codes, manifest["fitted_on"])
