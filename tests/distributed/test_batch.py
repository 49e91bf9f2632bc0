"""`index --ray` and `objects --ray` on the two-node test cluster compute what the in-process jobs compute, land
it (and the published codes) as Parquet by shard, and resume from what landed; shards build from those codes."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="the cluster extra: pip install 'viscover[cluster]'")

from ray.cluster_utils import Cluster  # noqa: E402

from viscover import Engine  # noqa: E402
from viscover.distributed import PoolShape, RayRunner, pool_shape  # noqa: E402
from viscover.distributed.batch import READ_CPUS, SPARE_CPUS, _detected_pins, _object_columns, _objects_table  # noqa: E402
from viscover.errors import BadSettingError  # noqa: E402
from viscover.index.shards import read_shards  # noqa: E402
from viscover.search import DetectedPin, index_objects, object_run  # noqa: E402

VISCOVER = Path(sys.executable).parent / "viscover"
TOLERANCE = 1e-4  # largest |ray - in process| relative to the largest feature: ONNX Runtime's thread count only


def by_pin(engine: Engine, model: str) -> dict[str, np.ndarray]:
    keys, vectors = engine.catalog.features(model)
    pins = engine.catalog.by_keys(keys.tolist())
    return {pins[int(key)].pin_id: vector for key, vector in zip(keys, vectors, strict=True)}


def test_the_model_pool_is_a_single_threaded_actor_a_core_and_leaves_room_to_read() -> None:
    assert pool_shape([2]) == PoolShape(actors=2, cpus=0.625, threads=1)  # this machine, a local Ray
    assert pool_shape([1, 1]) == PoolShape(actors=2, cpus=0.25, threads=1)  # the test cluster: 1 CPU a node
    assert pool_shape([0, 16, 16]) == PoolShape(actors=32, cpus=15.25 / 16, threads=1)  # a head node, no CPUs
    for nodes in ([2], [1, 1], [3, 3, 3], [16, 4, 2.5], [0.5, 8], [1.5, 2.5]):
        shape = pool_shape(nodes)
        assert shape.actors == sum(math.floor(cpus) for cpus in nodes if cpus >= 1)
        # each node holds its share of actors with a reading task's CPUs and some to spare; a node Ray packs
        # with more leaves another with fewer, so some node always has room to read (ray-project/ray#44687)
        assert all(math.floor(cpus) * shape.cpus + READ_CPUS + SPARE_CPUS <= cpus for cpus in nodes if cpus >= 1)
    with pytest.raises(BadSettingError, match="at least 1 CPU"):
        pool_shape([0.5])


def test_landed_pins_with_no_objects_read_back_as_pins_with_none() -> None:
    table = _objects_table([{**_object_columns(DetectedPin(7)), "key": 7, "sha256": "s", "location": "x", "error": ""}])
    (found,) = _detected_pins(table)
    assert found.key == 7 and found.objects == [] and found.vectors.shape == (0, 1) and found.failure is None


def test_index_on_ray_gives_the_in_process_features_landed_by_shard(
    cluster: Cluster, caltech_subset: Path, indexed_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "VISCOVER_CLUSTER_SHARDS": "3"}
    run = [str(VISCOVER), "--home", str(home), "-q"]
    subprocess.run([*run, "ingest", str(caltech_subset)], check=True, capture_output=True, env=env, timeout=300)
    done = subprocess.run([*run, "index", "--ray", cluster.address], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "extracted 30 new" in done.stdout and "(onnx on ray)" in done.stdout
    with Engine.open(home) as on_ray, Engine.open(indexed_home) as here:
        model = here.feature_key
        expected, got = by_pin(here, model), by_pin(on_ray, model)
        assert sorted(got) == sorted(expected)
        scale = max(np.abs(v).max() for v in expected.values())
        assert max(np.abs(got[p] - expected[p]).max() for p in expected) <= TOLERANCE * scale
        keys = set(on_ray.catalog.feature_keys(model).tolist())
    folder = next((home / "batch" / "features").iterdir()) / "3-shards"
    landed = set()
    for part in folder.glob("shard=*/part-*.parquet"):
        shard = int(part.parent.name.removeprefix("shard="))
        table = pq.read_table(part)
        assert all(key % 3 == shard for key in table["key"].to_pylist())  # as `viscover shard` splits
        landed.update(table["key"].to_pylist())
    assert landed == keys
    # the published index's codes land by shard too, and `viscover shard --ray` builds each shard from them
    generation = json.loads((home / "index" / "generation.json").read_text())["generation"]
    codes = home / "batch" / "codes" / f"visual-{generation}" / "3-shards"
    written = {path: path.stat().st_mtime_ns for path in codes.rglob("shard=*/*.parquet")}
    assert len(written) == 3
    done = subprocess.run(
        [*run, "shard", "--shards", "3", "--ray", cluster.address], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert f"in 3 shards under {home / 'index' / 'shards' / f'visual-{generation}'}" in done.stdout
    assert {path: path.stat().st_mtime_ns for path in codes.rglob("shard=*/*.parquet")} == written
    assert sorted(read_shards(home / "index" / "shards" / f"visual-{generation}").codes.ids()) == sorted(keys)


def test_a_rerun_commits_what_landed_before_a_stop_without_computing_it_again(
    cluster: Cluster, caltech_subset: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    shutil.copytree(caltech_subset, images)  # some are deleted below
    with Engine.open(tmp_path / "home", batch_size=4) as engine:
        engine.ingest(images, progress=False)
        runner = RayRunner(engine.settings, cluster.address)
        assert runner.shape == PoolShape(actors=2, cpus=0.25, threads=1)  # one a node, beside the readers
        pins = engine.catalog.pins_without_features(engine.feature_key)
        batches = runner.embed(engine.feature_key, pins, progress=False)
        first = next(batches)  # landed as Parquet, then the job stops before the catalog commits it
        batches.close()
        assert 0 < len(first.keys) < len(pins)
        for pin in engine.catalog.by_keys(first.keys).values():
            Path(pin.location).unlink()  # computing these again would now fail
        report = engine.index(progress=False, runner=runner)
        assert report.extracted == len(pins) and not report.failures
        keys, vectors = engine.catalog.features(engine.feature_key, first.keys)
        assert keys.tolist() == sorted(first.keys)
        assert np.array_equal(vectors, first.vectors[np.argsort(first.keys)])


def test_objects_on_ray_store_what_in_process_detection_stores(
    cluster: Cluster, indexed_home: Path, tmp_path: Path
) -> None:
    homes = {}
    for where in ("here", "ray"):
        homes[where] = tmp_path / where
        shutil.copytree(indexed_home, homes[where])
    with Engine.open(homes["here"]) as here, Engine.open(homes["ray"]) as on_ray:
        few = [pin.key for pin in list(here.catalog)[:3]]
        index_objects(here, progress=False, only=few)
        report = index_objects(on_ray, progress=False, only=few, runner=RayRunner(on_ray.settings, cluster.address))
        assert report.pins == 3 and report.windows and not report.failures
        run = object_run(here.settings, here.feature_key)
        expected, got = here.catalog.objects(run), on_ray.catalog.objects(run)
        assert [(o.key, o.box, o.label, o.dominant) for o in got] == [
            (o.key, o.box, o.label, o.dominant) for o in expected
        ]
        assert np.allclose([o.score for o in got], [o.score for o in expected], atol=1e-5)
        _, want = here.catalog.object_vectors(run)
        _, have = on_ray.catalog.object_vectors(run)
        assert np.abs(have - want).max() <= TOLERANCE * np.abs(want).max()
        objects = on_ray.published_indexes()["objects"]
        name = on_ray.store.current().name("objects")
    landing = (
        homes["ray"] / "batch" / "codes" / name / f"{min(on_ray.settings.cluster_shards, len(objects.codes))}-shards"
    )
    landed = {key for part in landing.glob("shard=*/*.parquet") for key in pq.read_table(part)["key"].to_pylist()}
    assert landed == set(objects.codes.ids().tolist())  # the object index's codes, by object id
