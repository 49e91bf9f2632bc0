from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from viscover.errors import UnknownNameError
from viscover.features import Binarizer, hamming_distances
from viscover.index import VectorIndex, VisualIndex


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return np.arange(100, 600, 5, dtype=np.int64), rng.normal(size=(100, 32)).astype(np.float32)


@pytest.mark.parametrize("spec", ["BFlat", "BIVF4", "BHNSW8"])
def test_hamming_search_finds_exact_neighbours(spec: str, data) -> None:
    keys, vectors = data
    codes = Binarizer("median", None).fit_transform(vectors)
    index = VectorIndex.create(spec, "hamming", 32)
    index.add(keys, codes)
    distances, found = index.search(codes[:3], 5)
    assert found[:, 0].tolist() == keys[:3].tolist() and distances[:, 0].tolist() == [0, 0, 0]
    if spec == "BFlat":  # exact: equals brute force
        brute = np.sort(hamming_distances(codes[7], codes))[:5]
        assert index.search(codes[7:8], 5)[0][0].tolist() == brute.tolist()


@pytest.mark.parametrize(("metric", "order"), [("l2", 2), ("l1", 1)])
def test_raw_metrics_match_numpy(metric: str, order: int, data) -> None:
    keys, vectors = data
    index = VectorIndex.create("Flat", metric, 32)
    index.add(keys, vectors)
    distances, found = index.search(vectors[4:5], 3)
    brute = np.linalg.norm(vectors - vectors[4], ord=order, axis=1)
    expected = np.argsort(brute)[:3]
    assert found[0].tolist() == keys[expected].tolist()
    np.testing.assert_allclose(distances[0], brute[expected], rtol=1e-4, atol=1e-4)


def test_remove_and_unsupported_remove(data) -> None:
    keys, vectors = data
    codes = Binarizer("median", None).fit_transform(vectors)
    flat = VectorIndex.create("BFlat", "hamming", 32)
    flat.add(keys, codes)
    assert flat.remove(keys[:1]) and len(flat) == 99
    assert keys[0] not in flat.search(codes[:1], 5)[1]
    hnsw = VectorIndex.create("BHNSW8", "hamming", 32)
    hnsw.add(keys, codes)
    assert not hnsw.remove(keys[:1])


def test_spec_and_metric_must_agree() -> None:
    with pytest.raises(UnknownNameError, match="cannot serve metric hamming"):
        VectorIndex.create("Flat", "hamming", 32)
    with pytest.raises(UnknownNameError, match="cannot serve metric l2"):
        VectorIndex.create("BFlat", "l2", 32)
    with pytest.raises(UnknownNameError, match="cannot build index 'BNope'"):
        VectorIndex.create("BNope", "hamming", 32)
    with pytest.raises(UnknownNameError, match="unknown metric"):
        VectorIndex.create("Flat", "cosine", 32)


def test_visual_index_saves_atomically_and_reloads(tmp_path: Path, data) -> None:
    keys, vectors = data
    binarizer = Binarizer("itq", 16).fit(vectors)
    codes = VectorIndex.create("BFlat", "hamming", binarizer.code_bits_)
    codes.add(keys, binarizer.transform(vectors))
    path = tmp_path / "index" / "visual.npz"
    VisualIndex("m/l@0", binarizer, codes).save(path)
    assert [p.name for p in path.parent.iterdir()] == ["visual.npz"]  # no temporary left behind
    loaded = VisualIndex.load(path)
    fitted = (loaded.binarizer.n_samples_fit_, loaded.binarizer.bits, loaded.bits)
    assert (loaded.model, fitted, len(loaded.codes)) == ("m/l@0", (100, 16, 16), 100)
    assert np.array_equal(loaded.codes.ids(), keys)
    query = loaded.binarizer.transform(vectors[:2])
    assert np.array_equal(loaded.codes.search(query, 3)[1], codes.search(binarizer.transform(vectors[:2]), 3)[1])


def test_search_breadth_of_approximate_indexes_is_a_setting(indexed_home: Path, tmp_path: Path) -> None:
    import faiss

    from tests.conftest import caltech_image
    from viscover import BytesQuery, Engine, Searcher

    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)
    with Engine.open(home, index="BIVF4") as engine:  # 30 pins in 4 inverted lists
        assert engine.index(progress=False).rebuilt
    query = BytesQuery(caltech_image("Leopards", 25).read_bytes())
    with Searcher.open(indexed_home) as exact:
        everything = [h.pin_id for h in exact.search(query, 30)]
    found = {}
    for nprobe in (1, 4):
        with Searcher.open(home, index="BIVF4", index_nprobe=nprobe) as searcher:
            inner = faiss.downcast_IndexBinary(searcher.snapshot().visual.codes.faiss_index.index)
            assert inner.nprobe == nprobe
            found[nprobe] = [h.pin_id for h in searcher.search(query, 30)]
    assert found[4] == everything  # every list visited: exact
    assert len(found[1]) < len(everything)  # one list: only the pins in the query's nearest list
    hnsw = VectorIndex.create("BHNSW8", "hamming", 64)
    hnsw.tune(nprobe=3, ef_search=40)
    assert faiss.downcast_IndexBinary(hnsw.faiss_index.index).hnsw.efSearch == 40
