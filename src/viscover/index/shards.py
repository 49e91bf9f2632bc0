"""A binary index split into shards for serving beyond one machine (issue 15): each pin goes to shard
`key % S` (its catalog key: stable across processes and runs, unlike Python's salted `hash()`), each shard is a
native FAISS binary index file written and read by FAISS's own functions, and the binarizer lies beside them.

A split is built in two steps: the index's codes land as Parquet partitioned by shard (`land_codes`), then one
task per shard builds its file from its own partition (`write_shards`), on threads here or on Ray tasks.
`ShardedIndex` searches every shard and merges by (distance, key), so it answers as the single index does and
can stand wherever a `VectorIndex` of codes does. Only exact (`BFlat`) indexes are sharded: an approximate one
would learn its lists or graph again per shard and answer differently.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from viscover.errors import BadArgumentError, NotIndexedError
from viscover.features.binarize import Binarizer
from viscover.index.vector_index import VectorIndex
from viscover.index.visual_index import VisualIndex
from viscover.storage import atomic_folder

MANIFEST = "shards.json"
CODES_MANIFEST = "codes.json"
LANDING_ROWS = 65_536  # codes written to, and read from, a shard's Parquet file at a time
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
    """The packed codes an exact binary index holds, in the order of its `ids()`: a view of FAISS's own array
    (no copy), valid while `codes` lives."""
    inner = faiss.downcast_IndexBinary(codes.faiss_index.index)
    return faiss.rev_swig_ptr(inner.xb.data(), inner.ntotal * inner.code_size).reshape(-1, inner.code_size)


def land_generation_codes(index: VisualIndex, home: Path, kind: str, generation: int, shards: int) -> Path:
    """Land the codes of published index generation `generation` in at most `shards` shards (no more than it has
    codes) under HOME/batch/codes/KIND-GENERATION/S-shards, and drop the landings of the generations before the
    previous one (the index store keeps the previous generation's files too)."""
    root = home / "batch" / "codes"
    shards = min(shards, max(1, len(index.codes)))
    folder = land_codes(index, root / f"{kind}-{generation}" / f"{shards}-shards", shards)
    for old in root.glob(f"{kind}-*"):
        number = old.name.removeprefix(f"{kind}-")
        if number.isdigit() and int(number) < generation - 1:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def land_codes(index: VisualIndex, folder: Path, shards: int) -> Path:
    """The codes of `index` as Parquet partitioned by shard (`folder/shard=N/part-0.parquet`: keys and codes,
    written `LANDING_ROWS` rows at a time), with `codes.json` saying whose codes they are: what shard builds
    read. Codes that landed already for this very index are kept; otherwise the folder is written whole."""
    _check_shardable(index, shards)
    identity = _landed_identity(index, shards)
    if _read_json(folder / CODES_MANIFEST) == identity:
        return folder
    keys, codes = index.codes.ids(), stored_codes(index.codes)
    home = shard_of(keys, shards)
    order = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[order], np.arange(shards + 1))
    schema = pa.schema([("key", pa.int64()), ("code", pa.binary(codes.shape[1]))])
    with atomic_folder(folder) as building:
        for shard in range(shards):
            mine = order[bounds[shard] : bounds[shard + 1]]
            (building / f"shard={shard}").mkdir()
            with pq.ParquetWriter(building / f"shard={shard}" / "part-0.parquet", schema) as writer:
                for start in range(0, len(mine), LANDING_ROWS):
                    rows = mine[start : start + LANDING_ROWS]
                    column = pa.FixedSizeBinaryArray.from_buffers(
                        schema.field("code").type, len(rows), [None, pa.py_buffer(codes[rows].tobytes())]
                    )
                    writer.write_table(pa.table([pa.array(keys[rows]), column], schema=schema))
        (building / CODES_MANIFEST).write_text(json.dumps(identity, indent=1))
    return folder


def build_shard(landing: Path, shard: int, out: Path) -> int:
    """Write shard `shard`'s FAISS binary index file into `out` from its partition of the codes landed under
    `landing` (one task of a shard build: it reads only its own partition); returns how many codes it holds."""
    manifest = _read_json(landing / CODES_MANIFEST)
    part = VectorIndex.create(manifest["spec"], "hamming", manifest["bits"])
    width = manifest["bits"] // 8
    try:
        for batch in pq.ParquetFile(landing / f"shard={shard}" / "part-0.parquet").iter_batches(LANDING_ROWS):
            column = batch.column("code")
            codes = np.frombuffer(column.buffers()[1], np.uint8)[
                column.offset * width : (column.offset + len(column)) * width
            ]
            part.add(batch.column("key").to_numpy(), codes.reshape(len(column), width))
    except (OSError, pa.ArrowException) as exc:
        raise NotIndexedError(f"shard {shard} of the codes landed under {landing} cannot be read ({exc})") from None
    faiss.write_index_binary(part.faiss_index, str(out / shard_file(shard, manifest["shards"])))
    return len(part)


TaskRunner = Callable[[Callable[..., int], Sequence[tuple]], list[int]]


def run_in_threads(task: Callable[..., int], calls: Sequence[tuple]) -> list[int]:
    """Run `task(*call)` for each call on a few threads of this process (the results in order)."""
    with ThreadPoolExecutor(max(1, min(len(calls), 4))) as pool:
        return list(pool.map(lambda call: task(*call), calls))


def write_shards(index: VisualIndex, landing: Path, directory: Path, run_tasks: TaskRunner = run_in_threads) -> int:
    """Build the shards of `index` under `directory` from its codes landed under `landing` (`land_codes`), one
    task per shard (`run_tasks`: threads here, or Ray tasks), with its binarizer and a manifest beside them;
    returns how many shards. The folder is written whole, so a directory with a manifest holds every shard."""
    landed = _read_json(landing / CODES_MANIFEST) or {}
    shards = landed.get("shards")
    if landed != _landed_identity(index, shards):
        raise NotIndexedError(f"the codes under {landing} are not this index's; land them first (land_codes)")
    with atomic_folder(directory) as building:
        held = run_tasks(build_shard, [(landing, shard, building) for shard in range(shards)])
        if sum(held) != len(index.codes):
            raise NotIndexedError(f"the shards hold {sum(held)} codes, the index {len(index.codes)}: land them again")
        with (building / BINARIZER).open("wb") as handle:
            np.savez(handle, **index.binarizer.to_arrays())
        manifest = {**_identity(index), "version": FORMAT_VERSION, "shards": shards}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return shards


def _check_shardable(index: VisualIndex, shards: int) -> None:
    if isinstance(index.codes, ShardedIndex):
        raise BadArgumentError("the index is sharded already")
    if index.codes.spec != "BFlat":
        raise BadArgumentError(
            f"only exact BFlat indexes are sharded, not {index.codes.spec!r}: an approximate index would learn "
            "again per shard and answer differently"
        )
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 4096:
        raise BadArgumentError(f"shards must be a whole number from 1 to 4096, got {shards!r}")


def _identity(index: VisualIndex) -> dict[str, object]:
    """What tells one index's codes from another's, as the manifests record it."""
    return {
        "model": index.model,
        "spec": index.codes.spec,
        "bits": index.bits,
        "fitted_on": index.fitted_on,
        "pins": len(index.codes),
    }


def _landed_identity(index: VisualIndex, shards: int) -> dict[str, object]:
    """What `codes.json` records: the index's identity, the split, and a CRC-32 of its keys and codes (the same
    codes, not only as many)."""
    keys, codes = index.codes.ids(), stored_codes(index.codes)
    return {**_identity(index), "shards": shards, "crc32": zlib.crc32(codes, zlib.crc32(keys))}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


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
