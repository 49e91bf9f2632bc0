"""Shards served by Ray actors answer as the single index does, on a real two-node Ray cluster started inside
the test (`ray.cluster_utils.Cluster`, 1 CPU a node, as on this 2-core machine), and a Flashlight request runs
on it unchanged."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the cluster extra: pip install 'viscover[cluster]'")

from ray.cluster_utils import Cluster  # noqa: E402

from tests.conftest import caltech_image  # noqa: E402
from tests.serve.conftest import start  # noqa: E402
from tests.serve.test_api import upload  # noqa: E402
from tests.test_cli import viscover  # noqa: E402
from viscover import BytesQuery, Searcher  # noqa: E402
from viscover.distributed import RayShardedIndex, serve_shards  # noqa: E402
from viscover.errors import BadArgumentError, ShardUnavailableError  # noqa: E402
from viscover.flashlight import Flashlight  # noqa: E402
from viscover.index.shards import land_codes, write_shards  # noqa: E402
from viscover.search import Snapshot  # noqa: E402


def queries(searcher: Searcher, model: str, count: int = 100) -> np.ndarray:
    """`count` query vectors: the catalog's own features with seeded noise (real vectors, none identical)."""
    _, vectors = searcher.catalog.features(model)
    rng = np.random.default_rng(0)
    picked = vectors[rng.integers(0, len(vectors), count)]
    return picked + rng.normal(0, 1, picked.shape).astype(np.float32) * vectors.std(axis=0) * 0.5


def answers(searcher: Searcher, snapshot: Snapshot, vectors: np.ndarray) -> list[list[tuple[str, float]]]:
    return [[(h.pin_id, h.distance) for h in searcher.stream(v, snapshot=snapshot).hits(0, 10)] for v in vectors]


def test_two_shards_on_two_nodes_answer_as_the_single_index_and_a_killed_one_is_never_silently_missing(
    cluster: Cluster, indexed_home: Path, tmp_path: Path
) -> None:
    with Searcher.open(indexed_home) as searcher:
        snapshot = searcher.snapshot()
        write_shards(snapshot.visual, land_codes(snapshot.visual, tmp_path / "codes", 2), tmp_path / "shards")
        served = serve_shards(tmp_path / "shards", resources=["node-a", "node-b"])
        assert isinstance(served.codes, RayShardedIndex) and len(served.codes) == 30
        assert sorted(served.codes.ids()) == sorted(snapshot.visual.codes.ids())
        placed = ray.get([server.node.remote() for server in served.codes.servers])
        assert len(set(placed)) == 2  # one shard server on each node
        vectors = queries(searcher, snapshot.visual.model)
        on_cluster = Snapshot(snapshot.generation, served, None)
        expected = answers(searcher, snapshot, vectors)
        assert answers(searcher, on_cluster, vectors) == expected
        # a shard server dies: each answer is then an error or complete, never the other shard's alone
        ray.kill(served.codes.servers[1], no_restart=False)
        refused = 0
        for vector, full in zip(vectors, expected, strict=True):
            try:
                got = [(h.pin_id, h.distance) for h in searcher.stream(vector, snapshot=on_cluster).hits(0, 10)]
            except ShardUnavailableError as exc:
                assert "did not answer" in str(exc)
                refused += 1
            else:
                assert got == full
        assert refused
        deadline = time.monotonic() + 60
        while True:
            try:
                served.codes.search(snapshot.visual.binarizer.transform(vectors[:1]), 1)
                break
            except ShardUnavailableError:
                assert time.monotonic() < deadline, "the shard server did not come back"
                time.sleep(0.5)
        assert answers(searcher, on_cluster, vectors) == expected  # restarted, it answers in full again
        with pytest.raises(BadArgumentError, match="servers must be from 1 to the 2 shards"):
            serve_shards(tmp_path / "shards", servers=3)
        with pytest.raises(BadArgumentError, match="one resource per server"):
            serve_shards(tmp_path / "shards", servers=2, resources=["node-a"])


def test_a_flashlight_request_runs_on_a_server_searching_the_cluster(
    cluster: Cluster, indexed_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)
    photo = caltech_image("Leopards", 21)
    with Searcher.open(home, annotation_depth=5) as searcher:
        single = Flashlight(searcher).look(BytesQuery(photo.read_bytes()), k=5, dots=False)
    for server in start(home, cluster=cluster.address, cluster_shards=3, annotation_depth=5):
        searcher = server.app.state.service.searcher
        assert isinstance(searcher.snapshot().visual.codes, RayShardedIndex)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answer = client.post("/v1/flashlight", files=upload(photo), data={"k": "5"})
    assert answer.status_code == 200, answer.text
    page = answer.json()["page"]
    assert [h["pin_id"] for h in page["results"]] == [h.pin_id for h in single.hits]
    assert [a["term"] for a in page["annotations"]] == [a.term for a in single.annotations]
    generation = json.loads((home / "index" / "generation.json").read_text())["generation"]
    assert len(list((home / "index" / "shards" / f"visual-{generation}").glob("*.faissb"))) == 3


def test_uploads_publish_new_generations_that_the_cluster_serves_without_piling_up(
    cluster: Cluster, indexed_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)
    for server in start(home, cluster=cluster.address, cluster_shards=2):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for number in range(31, 35):  # each upload publishes a new generation, sharded and served
                added = client.post("/v1/pins", files=upload(caltech_image("pagoda", number)))
                assert added.status_code == 201, added.text
                found = client.post("/v1/search", files=upload(caltech_image("pagoda", number)), data={"k": "1"})
                assert found.status_code == 200, found.text
                assert found.json()["results"][0]["pin_id"] == added.json()["pin"]["pin_id"]
        folders = sorted(p.name for p in (home / "index" / "shards").iterdir())
        assert len(folders) == 2 and all(name.startswith("visual-") for name in folders)  # older ones let go


def test_a_cluster_address_where_nothing_answers_is_refused_at_once(indexed_home: Path, tmp_path: Path) -> None:
    shutil.copytree(indexed_home, tmp_path / "home")
    started = time.monotonic()
    done = viscover("shard", "--shards", "2", "--ray", "127.0.0.1:1", home=tmp_path / "home")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "nothing answers at '127.0.0.1:1'" in done.stderr and "HOST:PORT" in done.stderr
    assert time.monotonic() - started < 60  # Ray's own retries take minutes
    assert not (tmp_path / "home" / "batch").exists()  # refused before anything was written
