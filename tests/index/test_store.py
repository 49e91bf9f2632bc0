"""Index generations: a writer publishes new files then one generation file; readers load one generation
whole; files two generations old are removed; a release-0.1.0 directory is adopted."""

from __future__ import annotations

import numpy as np

from viscover.features import Binarizer
from viscover.index import IndexStore, VectorIndex, VisualIndex


def small_index(model: str, keys: np.ndarray) -> VisualIndex:
    vectors = np.random.default_rng(len(keys)).normal(size=(len(keys), 16)).astype(np.float32)
    binarizer = Binarizer("median", None).fit(vectors)
    codes = VectorIndex.create("BFlat", "hamming", binarizer.code_bits_)
    codes.add(keys, binarizer.transform(vectors))
    return VisualIndex(model, binarizer, codes)


def test_generations_publish_whole_and_prune_older_files(tmp_path) -> None:
    store = IndexStore(tmp_path)
    assert store.current().number == 0 and store.load()[1] == {}
    store.publish(visual=small_index("m@1", np.arange(10)), objects=small_index("run", np.arange(5)))
    first = store.current()
    store.publish(visual=small_index("m@1", np.arange(12)))  # objects carry over
    generation, indexes = store.load()
    assert generation == store.current() != first and generation.number == 2
    assert len(indexes["visual"].codes) == 12 and len(indexes["objects"].codes) == 5
    assert generation.files == {"visual": "visual-2.npz", "objects": "objects-1.npz"}
    store.publish(visual=small_index("m@1", np.arange(14)), objects=None)
    kept = sorted(p.name for p in tmp_path.iterdir())
    # the previous generation's files stay for readers still loading them; older ones go
    assert kept == ["generation.json", "objects-1.npz", "visual-2.npz", "visual-3.npz"]
    assert set(store.load()[1]) == {"visual"}


def test_a_load_that_loses_a_race_with_the_writer_reads_the_newer_generation(tmp_path, monkeypatch) -> None:
    """A reader that read generation N's file names after the writer had already pruned them (two
    generations on) tries again and gets the newest, never a mix."""
    store = IndexStore(tmp_path)
    store.publish(visual=small_index("m@1", np.arange(10)))
    real_load, calls = VisualIndex.load, []

    def publish_twice_then_load(path):
        if not calls:
            calls.append(path)
            store.publish(visual=small_index("m@1", np.arange(11)))
            store.publish(visual=small_index("m@1", np.arange(12)))  # visual-1.npz is pruned now
        return real_load(path)

    monkeypatch.setattr(VisualIndex, "load", publish_twice_then_load)
    generation, indexes = store.load()
    assert generation.number == 3 and len(indexes["visual"].codes) == 12


def test_a_release_directory_is_adopted_with_renamed_models(tmp_path) -> None:
    small_index("backbone/layer", np.arange(10)).save(tmp_path / "visual.npz")
    store = IndexStore(tmp_path)
    assert store.has_legacy_files() and store.load()[1] == {}
    adopted = store.adopt_legacy(lambda model: model + "@digest")
    assert adopted["visual"].model == "backbone/layer@digest" and not store.has_legacy_files()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generation.json", "visual-1.npz"]
    assert store.adopt_legacy(lambda model: model + "@again") == {}
