"""A sharded index answers as the single index does: shards by `key % S` in native FAISS files, memory-mapped,
merged by (distance, key), each built from its own Parquet partition of the index's landed codes; `viscover
shard` lands and builds them for the published index."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import caltech_image
from tests.test_cli import viscover
from viscover import BytesQuery, Searcher
from viscover.errors import BadArgumentError, DamagedLandingError, NotIndexedError
from viscover.index import VectorIndex, VisualIndex
from viscover.index.shards import (
    ShardedIndex,
    build_shard,
    land_codes,
    land_index_codes,
    read_shards,
    shard_file,
    shard_index,
    stored_codes,
    write_shards,
)
from viscover.search import Snapshot


def codes_by_key(indexes: list[VectorIndex]) -> dict[int, bytes]:
    return {
        key: bytes(code)
        for index in indexes
        for key, code in zip(index.ids().tolist(), stored_codes(index), strict=True)
    }


def test_shards_hold_each_key_once_and_search_as_the_single_index(indexed_home: Path, tmp_path: Path) -> None:
    with Searcher.open(indexed_home) as searcher:
        snapshot = searcher.snapshot()
        single = snapshot.visual
        assert write_shards(single, land_codes(single, tmp_path / "codes", 4), tmp_path / "shards") == 4
        sharded = read_shards(tmp_path / "shards")
        assert isinstance(sharded.codes, ShardedIndex) and len(sharded.codes) == len(single.codes) == 30
        for number, shard in enumerate(sharded.codes.shards):
            assert all(key % 4 == number for key in shard.ids())
        assert sorted(sharded.codes.ids()) == sorted(single.codes.ids())
        manifest = json.loads((tmp_path / "shards" / "shards.json").read_text())
        assert (manifest["shards"], manifest["pins"], manifest["model"]) == (4, 30, single.model)
        # a shard file is FAISS's own: FAISS reads it without viscover
        assert faiss.read_index_binary(str(tmp_path / "shards" / shard_file(0, 4))).ntotal == len(
            sharded.codes.shards[0]
        )
        # every query: the same distances, and the same pins in the same order through the result stream
        queries = [BytesQuery(caltech_image(c, 20).read_bytes()) for c in ("Leopards", "pagoda", "airplanes")]
        vectors = searcher.embed(queries, single.model)
        codes = single.binarizer.transform(vectors)
        for k in (1, 7, 30, 50):
            one_d, _ = single.codes.search(codes, k)
            many_d, many_k = sharded.codes.search(codes, k)
            assert np.array_equal(one_d, many_d)
            for row in range(len(codes)):  # among equal distances, by key
                pairs = list(zip(many_d[row].tolist(), many_k[row].tolist(), strict=True))
                assert pairs == sorted(pairs)
        on_shards = Snapshot(snapshot.generation, sharded, None)
        for vector in vectors:
            expected = [(h.pin_id, h.distance) for h in searcher.stream(vector, snapshot=snapshot).hits(0, 25)]
            got = [(h.pin_id, h.distance) for h in searcher.stream(vector, snapshot=on_shards).hits(0, 25)]
            assert got == expected
        some = read_shards(tmp_path / "shards", only=[1, 3])  # what one server of a cluster holds
        assert sorted(some.codes.ids()) == sorted(k for k in single.codes.ids() if k % 4 in (1, 3))


def test_codes_land_by_shard_and_each_shard_is_built_from_its_own_partition(indexed_home: Path, tmp_path: Path) -> None:
    with Searcher.open(indexed_home) as searcher:
        single = searcher.snapshot().visual
    codes_of = dict(zip(single.codes.ids().tolist(), map(bytes, stored_codes(single.codes)), strict=True))
    landing = land_codes(single, tmp_path / "codes", 3)
    for shard in range(3):
        table = pq.read_table(landing / f"shard={shard}" / "part-0.parquet")
        keys = table["key"].to_pylist()
        assert keys and all(key % 3 == shard for key in keys)
        assert table["code"].to_pylist() == [codes_of[key] for key in keys]
    written = {path: path.stat().st_mtime_ns for path in landing.rglob("*.parquet")}
    assert land_codes(single, landing, 3) == landing  # the same index's codes: kept, not written again
    assert {path: path.stat().st_mtime_ns for path in landing.rglob("*.parquet")} == written
    # a shard task reads only its own partition: with the others gone, it still builds its file
    shutil.rmtree(landing / "shard=0")
    shutil.rmtree(landing / "shard=2")
    (tmp_path / "one").mkdir()
    rows, _ = build_shard(landing, 1, 3, "BFlat", single.bits, tmp_path / "one")
    assert rows == sum(key % 3 == 1 for key in codes_of)
    one = faiss.read_index_binary(str(tmp_path / "one" / shard_file(1, 3)))
    assert sorted(faiss.vector_to_array(one.id_map).tolist()) == sorted(k for k in codes_of if k % 3 == 1)
    # another index's codes in the landing (fewer pins; as many, one code changed): landed again before any
    # shard is built from them
    for keep, flip in (([key for key in codes_of if key % 2], None), (list(codes_of), min(codes_of))):
        other = VisualIndex(single.model, single.binarizer, VectorIndex.create("BFlat", "hamming", single.bits), 30)
        codes = np.array([np.frombuffer(codes_of[key], np.uint8) ^ (key == flip) for key in keep], np.uint8)
        other.codes.add(np.array(keep), codes)
        with pytest.raises(NotIndexedError, match="not this index's"):
            write_shards(other, landing, tmp_path / "other")
        write_shards(other, land_codes(other, landing, 3), tmp_path / "other")
        got = codes_by_key(read_shards(tmp_path / "other").codes.shards)
        assert got == {key: bytes(code) for key, code in zip(keep, codes, strict=True)}


def test_a_damaged_landing_is_landed_again_not_built_from(
    indexed_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Searcher.open(indexed_home) as searcher:
        single = searcher.snapshot().visual
    home, shards = tmp_path / "home", tmp_path / "shards"
    built, landing = shard_index(single, "visual-4", home, shards, 3)
    assert built == 3 and landing == (home / "batch" / "codes" / "visual-4" / "3-shards").resolve()
    # a partition lost: the landing is not whole, so its codes land again
    shutil.rmtree(landing / "shard=1")
    shard_index(single, "visual-4", home, shards, 3)
    assert (landing / "shard=1" / "part-0.parquet").is_file()
    # a partition with as many rows but other codes: the build's checksums tell, and the codes land again
    part = landing / "shard=2" / "part-0.parquet"
    table = pq.read_table(part)
    zeroed = pa.array([bytes(len(code)) for code in table["code"].to_pylist()], table.schema.field("code").type)
    pq.write_table(table.set_column(1, "code", zeroed), part)
    with pytest.raises(DamagedLandingError, match="not what landed"):
        write_shards(single, landing, tmp_path / "direct")
    with caplog.at_level(logging.WARNING):
        shard_index(single, "visual-4", home, shards, 3)
    assert "landing the codes again" in caplog.text
    assert codes_by_key(read_shards(shards).codes.shards) == codes_by_key([single.codes])
    # of the kind's older landings, only the newest before the current one stays
    for name in ("visual-6", "visual-9"):
        land_index_codes(single, name, home, 2)
    assert sorted(path.name for path in (home / "batch" / "codes").iterdir()) == ["visual-6", "visual-9"]


def test_a_split_that_fails_midway_leaves_the_one_before_whole(indexed_home: Path, tmp_path: Path) -> None:
    with Searcher.open(indexed_home) as searcher:
        single = searcher.snapshot().visual
    landing = land_codes(single, tmp_path / "codes", 2)
    write_shards(single, landing, tmp_path / "shards")

    def dies_after_one_shard(task, calls):  # a task runner whose second task dies (a node lost)
        task(*calls[0])
        raise OSError("node lost")

    with pytest.raises(OSError, match="node lost"):
        write_shards(single, landing, tmp_path / "shards", dies_after_one_shard)
    assert sorted(read_shards(tmp_path / "shards").codes.ids()) == sorted(single.codes.ids())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing half-written left


def test_bad_shard_requests_are_clear_errors(indexed_home: Path, tmp_path: Path) -> None:
    with Searcher.open(indexed_home) as searcher:
        single = searcher.snapshot().visual
        for bad in (0, 5000, True):
            with pytest.raises(BadArgumentError, match="shards must be"):
                land_codes(single, tmp_path / "bad", bad)
        write_shards(single, land_codes(single, tmp_path / "codes", 2), tmp_path / "two")
        with pytest.raises(BadArgumentError, match="among the 2"):
            read_shards(tmp_path / "two", only=[2])
        with pytest.raises(BadArgumentError, match="sharded already"):
            land_codes(read_shards(tmp_path / "two"), tmp_path / "again", 2)
    with pytest.raises(NotIndexedError, match="viscover shard"):
        read_shards(tmp_path / "nothing")
    approximate = VectorIndex.create("BHNSW8", "hamming", single.bits)
    with pytest.raises(BadArgumentError, match="only exact BFlat indexes are sharded, not 'BHNSW8'"):
        land_codes(VisualIndex(single.model, single.binarizer, approximate), tmp_path / "hnsw", 2)
    ivf = VectorIndex.create("BIVF64", "hamming", 256)
    with pytest.raises(BadArgumentError, match=r"cannot learn from 10 vectors.*BFlat"):
        ivf.add(np.arange(10), np.zeros((10, 32), np.uint8))


def test_viscover_shard_writes_the_published_index(indexed_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)
    done = viscover("shard", "--shards", "3", home=home)
    assert done.returncode == 0, done.stderr
    published = json.loads((home / "index" / "generation.json").read_text())
    generation, files = published["generation"], published["files"]
    folder = home / "index" / "shards" / f"visual-{generation}"
    assert f"30 visual codes of index generation {generation} in 3 shards" in done.stdout
    assert len(read_shards(folder).codes) == 30 and len(list(folder.glob("*.faissb"))) == 3
    landing = home / "batch" / "codes" / Path(files["visual"]).stem / "3-shards"
    assert f"landed by shard under {landing}" in done.stdout
    assert sorted(p.name for p in landing.iterdir()) == ["codes.json", "shard=0", "shard=1", "shard=2"]
    missing = viscover("shard", "--shards", "2", "--kind", "objects", home=home)
    assert missing.returncode != 0 and "viscover objects" in missing.stderr and "Traceback" not in missing.stderr
