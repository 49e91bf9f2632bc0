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
import logging
import shutil
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from viscover.errors import BadArgumentError, DamagedLandingError, NotIndexedError
from viscover.features.binarize import Binarizer
from viscover.index.vector_index import VectorIndex
from viscover.index.visual_index import VisualIndex
from viscover.storage import atomic_folder

log = logging.getLogger(__name__)

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
    """The packed codes a binary index holds, in the order of its `ids()`: for an exact index a read-only view
    of FAISS's own array (no copy, valid while `codes` lives), for others a copy."""
    inner = faiss.downcast_IndexBinary(codes.faiss_index.index)
    if not len(codes):
        return np.zeros((0, inner.code_size), np.uint8)
    if not isinstance(inner, faiss.IndexBinaryFlat):
        return inner.reconstruct_n(0, len(codes))
    view = faiss.rev_swig_ptr(inner.xb.data(), inner.ntotal * inner.code_size).reshape(-1, inner.code_size)
    view.flags.writeable = False
    return view


TaskRunner = Callable[[Callable[..., Any], Sequence[tuple]], list[Any]]


def run_in_threads(task: Callable[..., Any], calls: Sequence[tuple]) -> list[Any]:
    """Run `task(*call)` for each call on a few threads of this process (the results in order)."""
    with ThreadPoolExecutor(max(1, min(len(calls), 4))) as pool:
        return list(pool.map(lambda call: task(*call), calls))


def shard_index(
    index: VisualIndex, name: str, home: Path, directory: Path, shards: int, run_tasks: TaskRunner = run_in_threads
) -> tuple[int, Path]:
    """Split `index` (published as `name`, e.g. `visual-12`) into `directory`: its codes land by shard
    (`land_index_codes`), then a task per shard builds its file; a landing found damaged is landed again once.
    Returns how many shards, and where the codes landed."""
    landing = land_index_codes(index, name, home, shards)
    try:
        return write_shards(index, landing, directory, run_tasks), landing
    except DamagedLandingError as exc:
        log.warning("%s; landing the codes again", exc)
        (landing / CODES_MANIFEST).unlink(missing_ok=True)
        landing = land_index_codes(index, name, home, shards)
        return write_shards(index, landing, directory, run_tasks), landing


def land_index_codes(index: VisualIndex, name: str, home: Path, shards: int) -> Path:
    """Land the codes of the index published as `name` in at most `shards` shards (no more than it has codes)
    under HOME/batch/codes/NAME/S-shards; of the kind's other landings, only the newest one before it stays."""
    root = home.resolve() / "batch" / "codes"
    shards = min(shards, max(1, len(index.codes)))
    folder = land_codes(index, root / name / f"{shards}-shards", shards)
    kind, number = _numbered(name)
    older = sorted((n, path) for path in root.glob(f"{kind}-*") if (n := _numbered(path.name)[1]) < number)
    for _, path in older[:-1]:
        shutil.rmtree(path, ignore_errors=True)
    return folder


def land_codes(index: VisualIndex, folder: Path, shards: int) -> Path:
    """The codes of `index` as Parquet partitioned by shard (`folder/shard=N/part-0.parquet`), with `codes.json`
    recording whose they are and each shard's rows and checksums; a whole landing of the same codes is kept."""
    _check_shardable(index, shards)
    keys, codes = index.codes.ids(), stored_codes(index.codes)
    identity = _landed_identity(index, shards, keys, codes)
    if _whole(folder, identity):
        return folder
    home = shard_of(keys, shards)
    order = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[order], np.arange(shards + 1))
    schema = pa.schema([("key", pa.int64()), ("code", pa.binary(codes.shape[1]))])
    rows, checksums = [], []
    with atomic_folder(folder) as building:
        for shard in range(shards):
            mine = order[bounds[shard] : bounds[shard + 1]]
            checksum = ShardChecksum()
            (building / f"shard={shard}").mkdir()
            with pq.ParquetWriter(building / f"shard={shard}" / "part-0.parquet", schema) as writer:
                for start in range(0, len(mine), LANDING_ROWS):
                    rows_now = mine[start : start + LANDING_ROWS]
                    chunk_keys, chunk_codes = keys[rows_now], codes[rows_now]
                    checksum.add(chunk_keys, chunk_codes)
                    column = pa.FixedSizeBinaryArray.from_buffers(
                        schema.field("code").type, len(chunk_keys), [None, pa.py_buffer(chunk_codes.tobytes())]
                    )
                    writer.write_table(pa.table([pa.array(chunk_keys), column], schema=schema))
            rows.append(len(mine))
            checksums.append(checksum.value)
        manifest = {**identity, "rows": rows, "checksums": checksums}
        (building / CODES_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return folder


@dataclass
class ShardChecksum:
    """CRC-32s of a shard's keys and of its codes, fed chunk by chunk: what a build read is what landed."""

    keys: int = 0
    codes: int = 0

    def add(self, keys: np.ndarray, codes: np.ndarray) -> None:
        self.keys = zlib.crc32(np.ascontiguousarray(keys, np.int64), self.keys)
        self.codes = zlib.crc32(np.ascontiguousarray(codes), self.codes)

    @property
    def value(self) -> list[int]:
        return [self.keys, self.codes]


def build_shard(landing: Path, shard: int, shards: int, spec: str, bits: int, out: Path) -> tuple[int, list[int]]:
    """Write shard `shard`'s FAISS file into `out` from its own partition of the codes under `landing` (one task
    of a split); returns the rows it read and their checksums."""
    part, width, checksum = VectorIndex.create(spec, "hamming", bits), bits // 8, ShardChecksum()
    try:
        with pq.ParquetFile(landing / f"shard={shard}" / "part-0.parquet") as landed:
            for batch in landed.iter_batches(LANDING_ROWS):
                column = batch.column("code")
                codes = np.frombuffer(column.buffers()[1], np.uint8)[
                    column.offset * width : (column.offset + len(column)) * width
                ].reshape(len(column), width)
                keys = batch.column("key").to_numpy()
                checksum.add(keys, codes)
                part.add(keys, codes)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise DamagedLandingError(f"shard {shard} of the codes under {landing} cannot be read ({exc})") from None
    faiss.write_index_binary(part.faiss_index, str(out / shard_file(shard, shards)))
    return len(part), checksum.value


def write_shards(index: VisualIndex, landing: Path, directory: Path, run_tasks: TaskRunner = run_in_threads) -> int:
    """Build the shards of `index` in `directory` (written whole) from its codes landed under `landing`, one
    task per shard (`run_tasks`: threads here, or Ray tasks), the binarizer beside them; returns how many."""
    landed = _read_json(landing / CODES_MANIFEST)
    if not isinstance(landed, dict):
        raise NotIndexedError(f"no codes landed under {landing}; land them first (land_codes)")
    shards = landed.get("shards")
    _check_shardable(index, shards)
    expected = _landed_identity(index, shards, index.codes.ids(), stored_codes(index.codes))
    if {name: landed.get(name) for name in expected} != expected:
        raise NotIndexedError(f"the codes under {landing} are not this index's; land them first (land_codes)")
    landing, spec, bits = landing.resolve(), index.codes.spec, index.bits
    with atomic_folder(directory.resolve()) as building:
        built = run_tasks(build_shard, [(landing, shard, shards, spec, bits, building) for shard in range(shards)])
        if [rows for rows, _ in built] != landed.get("rows") or [sums for _, sums in built] != landed.get("checksums"):
            raise DamagedLandingError(f"the codes under {landing} are not what landed (rows or checksums differ)")
        with (building / BINARIZER).open("wb") as handle:
            np.savez(handle, **index.binarizer.to_arrays())
        manifest = {**_identity(index), "version": FORMAT_VERSION, "shards": shards}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return shards


def _check_shardable(index: VisualIndex, shards: object) -> None:
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


def _landed_identity(index: VisualIndex, shards: int, keys: np.ndarray, codes: np.ndarray) -> dict[str, object]:
    """What `codes.json` records of whose codes it holds: the index, the split, and a CRC-32 of its `keys` and
    `codes` (the same codes, not only as many)."""
    return {**_identity(index), "shards": shards, "crc32": zlib.crc32(codes, zlib.crc32(keys))}


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _whole(folder: Path, identity: dict[str, object]) -> bool:
    """Whether `folder` holds a landing of `identity` with every partition there, as many rows as it recorded."""
    manifest = _read_json(folder / CODES_MANIFEST)
    if not isinstance(manifest, dict) or {name: manifest.get(name) for name in identity} != identity:
        return False
    try:
        return [
            pq.read_metadata(folder / f"shard={shard}" / "part-0.parquet").num_rows
            for shard in range(identity["shards"])
        ] == manifest.get("rows")
    except (OSError, pa.ArrowException):
        return False


def _numbered(name: str) -> tuple[str, int]:
    """`visual-12` → ("visual", 12); a name without a number sorts first."""
    kind, _, number = name.rpartition("-")
    return (kind, int(number)) if number.isdigit() else (name, -1)


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
