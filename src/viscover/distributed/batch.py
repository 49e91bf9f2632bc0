"""Batch jobs on Ray Data (issue 15): `viscover index --ray` and `viscover objects --ray`.

Reading and decoding run as Ray tasks. The model runs in a pool of actors, one per core, each holding one
ONNX Runtime session (and, for objects, one detector) on one thread. Every node keeps room for a reading task
beside its actors: a pool that takes every CPU hangs the dataset (ray-project/ray#44687).

What the actors produce lands as Parquet under HOME/batch/, partitioned by shard (`key % cluster_shards`, as
`viscover shard` splits), one file per batch written whole. This process, the home's one writer, commits each
batch to the catalog as it arrives. A rerun commits what landed before a stop without computing it again. Once
the index is published, its codes land by shard too: what shard builds read.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import ray.data
from PIL import Image
from ray.data.exceptions import UserCodeException
from tqdm import tqdm

from viscover.box import Box
from viscover.config import Settings
from viscover.detect import create_detector
from viscover.distributed.shard_servers import connect
from viscover.errors import BadImageError, BadSettingError
from viscover.features import EmbeddedBatch, Embedder, Preprocess, load_pixels
from viscover.index import VisualIndex
from viscover.index.shards import land_index_codes, shard_of
from viscover.ingest import ObjectRun, Pin, StoredObject, decode_image, read_bytes
from viscover.search import DetectedPin, detect_pin
from viscover.storage import atomic_path

log = logging.getLogger(__name__)

READ_CPUS = 0.5  # the CPU share a reading and decoding task reserves
SPARE_CPUS = 0.25  # kept free on each node beyond a reading task, for small reservations (shard servers: 0.05)
PINS_PER_DETECTION_BLOCK = 4  # a pin takes a detector actor about a second (86 crops embedded with windows)


@dataclass(frozen=True)
class PoolShape:
    """The model actors of a batch job: how many, the CPUs each reserves, and the threads each runs."""

    actors: int
    cpus: float
    threads: int


def pool_shape(node_cpus: Sequence[float]) -> PoolShape:
    """One single-threaded model actor per whole CPU of the nodes of 1 CPU or more, each reserving the same
    share: the smallest, over those nodes, of what a node has left for each of its actors once READ_CPUS and
    SPARE_CPUS are kept free. However Ray packs the actors, a full node still has room for a reading task.
    Sessions on one thread never wait on each other while a reading task holds a core (docs/results/cluster.md:
    2 such actors beat one on 2 threads)."""
    nodes = [cpus for cpus in node_cpus if cpus >= 1]
    if not nodes:
        raise BadSettingError(f"a Ray batch job needs a node with at least 1 CPU; the cluster's have {node_cpus}")
    share = min((cpus - READ_CPUS - SPARE_CPUS) / math.floor(cpus) for cpus in nodes)
    return PoolShape(sum(math.floor(cpus) for cpus in nodes), share, 1)


def cluster_pool() -> PoolShape:
    """`pool_shape` for the connected Ray cluster."""
    return pool_shape([node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["Alive"]])


class Landing:
    """The Parquet files of one batch job, `shard=S/part-ID.parquet`; every row has the pin's `key` and the
    `sha256` the catalog records for the image it was computed from, so a pin whose image changed is computed
    again."""

    def __init__(self, folder: Path, shards: int) -> None:
        self.folder, self.shards = folder, shards

    def landed(self) -> dict[tuple[int, str], Path]:
        """The part holding each (key, image digest) that landed; a part that cannot be read is skipped (its
        pins are computed again)."""
        found: dict[tuple[int, str], Path] = {}
        for path in sorted(self.folder.glob("shard=*/part-*.parquet")):
            try:
                table = pq.read_table(path, columns=["key", "sha256"])
            except (OSError, pa.ArrowException) as exc:
                log.warning("skipping unreadable landed part %s (%s)", path, exc)
                continue
            pairs = zip(table["key"].to_pylist(), table["sha256"].to_pylist(), strict=True)
            found.update((pair, path) for pair in pairs)
        return found

    def write(self, table: pa.Table) -> None:
        """Land one batch: its rows by shard, each file written whole (and flushed) under a fresh name."""
        shard = shard_of(np.asarray(table["key"]), self.shards)
        for s in np.unique(shard):
            with atomic_path(self.folder / f"shard={s}" / f"part-{uuid.uuid4().hex}.parquet") as tmp:
                pq.write_table(table.filter(pa.array(shard == s)), tmp)
                with tmp.open("rb") as handle:
                    os.fsync(handle.fileno())

    def read(self, pins: Sequence[Pin], landed: dict[tuple[int, str], Path]) -> Iterator[pa.Table]:
        """The landed rows of `pins` (each computed from the pin's current image), read from only the parts
        that hold them, each row once."""
        by_part: dict[Path, set[str]] = {}
        for pin in pins:
            part = landed.get((pin.key, pin.sha256))
            if part is not None:
                by_part.setdefault(part, set()).add(f"{pin.key}:{pin.sha256}")
        for part, wanted in by_part.items():
            table = pq.read_table(part)
            ids = pc.binary_join_element_wise(table["key"].cast(pa.string()), table["sha256"], ":")
            yield table.filter(pc.is_in(ids, value_set=pa.array(sorted(wanted))))


class RayRunner:
    """A `BatchRunner` on a Ray cluster: `Engine.index(runner=...)` and `index_objects(runner=...)`. Ray is
    started or joined only when there is something to compute."""

    runtime = "onnx on ray"

    def __init__(self, settings: Settings, address: str | None = None) -> None:
        self.settings, self.address = settings, address

    @functools.cached_property
    def shape(self) -> PoolShape:
        """The model pool for the cluster (connecting to it)."""
        connect(self.address)
        return cluster_pool()

    def embed(self, model: str, pins: Sequence[Pin], progress: bool) -> Iterator[EmbeddedBatch]:
        """Features of `pins`: landed ones first, then the rest through read tasks and embedding actors."""
        settings = self.settings
        landing = self._landing("features", model)
        landed = landing.landed()
        with tqdm(total=len(pins), unit="img", desc=f"extract {model} on Ray", disable=not progress) as bar:
            for table in landing.read(pins, landed):
                bar.update(table.num_rows)
                yield EmbeddedBatch(table["key"].to_pylist(), _matrix(table["vector"]))
            rest = [pin for pin in pins if (pin.key, pin.sha256) not in landed]
            if not rest:
                return
            embedder = Embedder.load(model, settings, 1)  # exports the model once, before the actors read it
            if embedder.runtime != "onnx":
                raise BadSettingError(f"index --ray runs ONNX Runtime, but {model} has no ONNX export (runtime)")
            shape = self.shape
            dataset = _pins_dataset(rest, settings.batch_size).map_batches(
                _read_pixels,
                fn_kwargs={"preprocess": embedder.preprocess, "settings": settings},
                batch_size=settings.batch_size,
                num_cpus=READ_CPUS,
            )
            dataset = dataset.map_batches(
                _EmbedActor,
                fn_constructor_kwargs={"model": model, "settings": settings, "threads": shape.threads},
                compute=ray.data.ActorPoolStrategy(size=shape.actors),
                num_cpus=shape.cpus,
                batch_size=settings.batch_size,
            )
            for batch in _batches(dataset, "numpy", landing):
                ok = batch["error"] == ""
                keys, vectors = batch["key"][ok], np.asarray(batch["vector"][ok], dtype=np.float32)
                if ok.any():
                    landing.write(pa.table({"key": keys, "sha256": batch["sha256"][ok], "vector": _column(vectors)}))
                bar.update(len(ok))
                failures = list(zip(batch["location"][~ok].tolist(), batch["error"][~ok].tolist(), strict=True))
                yield EmbeddedBatch(keys.tolist(), vectors, failures)

    def detect(self, run: str, pins: Sequence[Pin], progress: bool) -> Iterator[DetectedPin]:
        """Objects of `pins`: landed ones first, then the rest through read tasks and detector actors."""
        settings = self.settings
        # what lands depends on the dominance rule too: rows marked under another rule are not reused
        landing = self._landing("objects", f"{run}|dominant={settings.dominant_area:g},{settings.dominant_score:g}")
        landed = landing.landed()
        desc = f"objects ({settings.detector}) on Ray"
        with tqdm(total=len(pins), unit="pin", desc=desc, disable=not progress) as bar:
            for table in landing.read(pins, landed):
                bar.update(table.num_rows)
                yield from _detected_pins(table)
            rest = [pin for pin in pins if (pin.key, pin.sha256) not in landed]
            if not rest:
                return
            Embedder.load(ObjectRun.parse(run).model, settings, 1)  # exported once, before the actors read it
            shape = self.shape
            dataset = _pins_dataset(rest, PINS_PER_DETECTION_BLOCK).map_batches(
                _read_images, fn_kwargs={"settings": settings}, batch_size=1, num_cpus=READ_CPUS
            )
            dataset = dataset.map_batches(
                _DetectActor,
                fn_constructor_kwargs={"run": run, "settings": settings, "threads": shape.threads},
                compute=ray.data.ActorPoolStrategy(size=shape.actors),
                num_cpus=shape.cpus,
                batch_size=1,
            )
            for batch in _batches(dataset, "pyarrow", landing):
                ok = pc.equal(batch["error"], "")
                done = batch.filter(ok).drop_columns(["error", "location"])
                if done.num_rows:
                    landing.write(done)
                bar.update(batch.num_rows)
                yield from _detected_pins(done)
                for row in batch.filter(pc.invert(ok)).select(["key", "error"]).to_pylist():
                    yield DetectedPin(row["key"], failure=row["error"])

    def published(self, name: str, index: VisualIndex) -> None:
        """Land the codes of the index this job fed by shard (`cluster_shards`), for shard builds to read. Only
        exact indexes are sharded; the index is published already, so a failure here only warns."""
        if index.codes.spec != "BFlat":
            return
        try:
            land_index_codes(index, name, self.settings.home, self.settings.cluster_shards)
        except OSError as exc:
            log.warning("the codes of %s did not land (%s); `viscover shard` lands them when it runs", name, exc)

    def _landing(self, kind: str, name: str) -> Landing:
        folder = re.sub(r"[^A-Za-z0-9_.=,-]", "-", name)
        shards = self.settings.cluster_shards
        return Landing(self.settings.home / "batch" / kind / folder / f"{shards}-shards", shards)


def _batches(dataset: ray.data.Dataset, batch_format: str, landing: Landing) -> Iterator:
    """The dataset's output block by block; a failure in Ray becomes an error naming its cause."""
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format=batch_format)
    except (ray.exceptions.RayError, UserCodeException) as exc:
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        last_line = (str(cause).strip().splitlines() or ["no message"])[-1][:300]
        raise BadSettingError(
            f"the job failed on Ray ({type(cause).__name__}: {last_line}); what "
            f"landed under {landing.folder} is kept and a rerun commits it without computing it again"
        ) from None


def _pins_dataset(pins: Sequence[Pin], per_block: int) -> ray.data.Dataset:
    """`pins` as a dataset of blocks of `per_block` rows: what lands and is committed at a time."""
    # the job's own bar counts committed pins; Ray Data's bars and plan notes would only crowd it
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    rows = [{"key": pin.key, "sha256": pin.sha256, "location": pin.location} for pin in pins]
    return ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_block))


def _read_pixels(batch: dict[str, np.ndarray], preprocess: Preprocess, settings: Settings) -> dict[str, np.ndarray]:
    """Read task: each image decoded, resized and cropped for the network (uint8), or why it could not be."""
    pixels = np.zeros((len(batch["key"]), preprocess.crop, preprocess.crop, 3), dtype=np.uint8)
    errors = []
    for n, location in enumerate(batch["location"]):
        try:
            pixels[n] = load_pixels(str(location), preprocess, settings)
            errors.append("")
        except BadImageError as exc:
            errors.append(str(exc))
    return {**batch, "pixels": pixels, "error": np.array(errors, dtype=object)}


class _EmbedActor:
    """One ONNX Runtime session of a feature space, on its actor's CPU share."""

    def __init__(self, model: str, settings: Settings, threads: int) -> None:
        self.embedder = Embedder.load(model, settings, threads)
        crop = self.embedder.preprocess.crop
        self.dim = self.embedder.run(np.zeros((1, 3, crop, crop), dtype=np.float32)).shape[1]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pixels, ok = batch.pop("pixels"), batch["error"] == ""
        vectors = np.zeros((len(ok), self.dim), dtype=np.float32)
        if ok.any():
            vectors[ok] = self.embedder.run(self.embedder.preprocess.normalize(pixels[ok]))
        return {**batch, "vector": vectors}


def _read_images(batch: dict[str, np.ndarray], settings: Settings) -> dict[str, np.ndarray]:
    """Read task: each image's bytes and its RGB pixels, or why it could not be decoded."""
    data, pixels, errors = [], [], []
    for location in batch["location"]:
        try:
            raw = read_bytes(str(location), settings.fetch_timeout_s)
            pixels.append(np.asarray(decode_image(raw, str(location), settings.max_image_pixels).image))
            data.append(raw)
            errors.append("")
        except BadImageError as exc:
            data.append(b"")
            pixels.append(np.zeros((1, 1, 3), dtype=np.uint8))
            errors.append(str(exc))
    return {**batch, "data": np.array(data, dtype=object), "pixels": _objects(pixels), "error": np.array(errors)}


class _DetectActor:
    """One detector and one embedder, on the actor's CPU share, running `detect_pin` pin by pin."""

    def __init__(self, run: str, settings: Settings, threads: int) -> None:
        self.settings = settings
        self.detector = create_detector(settings.detector, settings, threads)
        self.embedder = Embedder.load(ObjectRun.parse(run).model, settings, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        rows = []
        for key, sha256, location, data, pixels, error in zip(
            batch["key"],
            batch["sha256"],
            batch["location"],
            batch["data"],
            batch["pixels"],
            batch["error"],
            strict=True,
        ):
            row = {"key": int(key), "sha256": str(sha256), "location": str(location), "error": str(error)}
            if not error:
                image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
                found = detect_pin(self.detector, self.embedder, self.settings, int(key), str(location), data, image)
                row.update(_object_columns(found))
            else:
                row.update(_object_columns(DetectedPin(int(key))))
            rows.append(row)
        return _objects_table(rows)


def _object_columns(found: DetectedPin) -> dict[str, object]:
    return {
        "boxes": [list(o.box) for o in found.objects],
        "labels": [o.label for o in found.objects],
        "scores": [o.score for o in found.objects],
        "dominant": [o.dominant for o in found.objects],
        "vectors": found.vectors.tolist() if found.objects else [],
        "windows": found.windows,
    }


def _objects_table(rows: list[dict[str, object]]) -> pa.Table:
    schema = pa.schema(
        [
            ("key", pa.int64()),
            ("sha256", pa.string()),
            ("location", pa.string()),
            ("error", pa.string()),
            ("boxes", pa.list_(pa.list_(pa.float64(), 4))),
            ("labels", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float64())),
            ("dominant", pa.list_(pa.bool_())),
            ("vectors", pa.list_(pa.list_(pa.float32()))),
            ("windows", pa.int64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _detected_pins(table: pa.Table) -> Iterator[DetectedPin]:
    for row in table.to_pylist():
        objects = [
            StoredObject(-1, row["key"], Box(*box), label, score, dominant)
            for box, label, score, dominant in zip(
                row["boxes"], row["labels"], row["scores"], row["dominant"], strict=True
            )
        ]
        if not objects:  # nothing detected (and no windows asked for)
            yield DetectedPin(row["key"], windows=row["windows"])
            continue
        vectors = np.asarray(row["vectors"], dtype=np.float32).reshape(len(objects), -1)
        yield DetectedPin(row["key"], objects, vectors, row["windows"])


def _column(vectors: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    array = column.combine_chunks()
    return np.asarray(array.values, dtype=np.float32).reshape(len(array), array.type.list_size)


def _objects(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of arrays of different shapes (numpy would otherwise try to stack them)."""
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    return column
