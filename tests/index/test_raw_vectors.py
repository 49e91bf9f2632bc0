"""Raw L2/L1 search from a memory-mapped file answers as an in-memory FAISS Flat index does, chunk by chunk;
index builds read and code the catalog a chunk at a time and learn from a seeded sample."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import viscover.index.raw_vectors as raw_vectors
import viscover.search.engine as engine_module
from viscover import Engine, Searcher
from viscover.index import RawVectors, VectorIndex
from viscover.search import PinQuery
from viscover.search.results import unit_vectors


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_raw_vectors_search_as_a_flat_index_across_chunks(metric: str, tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(3)
    keys = np.arange(10, 1010, 2, dtype=np.int64)
    vectors = unit_vectors(rng.normal(size=(len(keys), 24)).astype(np.float32), metric)
    reads: list[int] = []

    def read(ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        reads.append(len(ids))
        rows = np.searchsorted(keys, ids)
        return keys[rows], vectors[rows]

    monkeypatch.setattr(raw_vectors, "READ_CHUNK", 128)
    monkeypatch.setattr(raw_vectors, "SEARCH_CHUNK", 97)  # answers from six chunks merged
    raw = RawVectors.build(tmp_path / "raw", keys, read, metric)
    assert reads == [128, 128, 128, 116] and isinstance(raw.vectors, np.memmap)
    flat = VectorIndex.create("Flat", metric, 24)
    flat.add(keys, vectors)
    queries = unit_vectors(rng.normal(size=(20, 24)).astype(np.float32), metric)
    for k in (1, 10, 500, 900):
        want_d, want_k = flat.search(queries, k)
        got_d, got_k = RawVectors.open(tmp_path / "raw", metric).search(queries, k)
        assert np.array_equal(got_k, want_k) and np.allclose(got_d, want_d, atol=1e-5)


def test_raw_search_maps_one_file_per_generation(engine: Engine) -> None:
    hits = engine.search(PinQuery(next(iter(engine.catalog)).pin_id), 5, "l2")
    assert hits[0].distance == pytest.approx(0, abs=1e-3)
    folder = engine.settings.index_dir / "raw"
    assert len(list(folder.glob("*-l2-*"))) == 1
    engine.delete([hits[-1].pin_id])  # a new generation: its own folder, the old one removed
    assert hits[-1].pin_id not in [h.pin_id for h in engine.search(PinQuery(hits[0].pin_id), 30, "l2")]
    (only,) = folder.glob("*-l2-*")
    (only / "keys.npy").write_bytes((only / "keys.npy").read_bytes()[:-8])  # damaged: one key short
    with Searcher.open(engine.settings.home) as fresh:  # another process rebuilds it rather than fail
        assert fresh.search(PinQuery(hits[0].pin_id), 3, "l2")[0].pin_id == hits[0].pin_id
    assert len(list(folder.glob("*-l2-*"))) == 1


@pytest.mark.parametrize("spec", ["BFlat", "BIVF2"])
def test_an_index_built_chunk_by_chunk_equals_one_built_at_once(
    indexed_home: Path, tmp_path: Path, monkeypatch, spec: str
) -> None:
    built = {}
    with Engine.open(indexed_home, index=spec, binarizer_sample=20) as engine:
        model = engine.feature_key
        ids, vectors = engine.catalog.features(model)
        for chunk in (1_000_000, 7):
            monkeypatch.setattr(engine_module, "CODING_CHUNK", chunk)
            built[chunk] = engine_module.coded_index(model, ids, engine.vector_reader("visual", model), engine.settings)
    whole, chunked = built.values()
    assert whole.fitted_on == chunked.fitted_on == 30
    queries = whole.binarizer.transform(vectors)
    assert np.array_equal(whole.codes.search(queries, 30)[1], chunked.codes.search(queries, 30)[1])
