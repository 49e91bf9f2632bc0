"""The paper's Table 1 study on a user's own catalog: Precision@K over a grid of (backbone, layer,
binarization, distance). Features are extracted once per (backbone, layer), stored in the catalog, and
reused by every row that needs them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from viscover.errors import ViscoverError
from viscover.evaluate.retrieval import RetrievalScores, sample_queries, score_retrieval
from viscover.features import METHODS, Binarizer
from viscover.index import VectorIndex
from viscover.search import Engine

RAW = "none"
NOISE_LABEL = "__noise__"
DEFAULT_BITS = {"itq": 256}  # sign and median keep one bit per feature dimension, as in the paper


@dataclass(frozen=True)
class Binarization:
    """`none` (raw floats) or a binarizer with an optional code length, written 'itq:512'."""

    method: str
    bits: int | None = None

    @classmethod
    def parse(cls, text: str) -> Binarization:
        method, _, bits = text.strip().partition(":")
        if method not in (RAW, *METHODS):
            raise ViscoverError(f"unknown binarization {text!r}; use none, {', '.join(METHODS)} (e.g. itq:512)")
        if method == RAW and bits:
            raise ViscoverError("raw features ('none') take no code length")
        try:
            return cls(method, int(bits) if bits else DEFAULT_BITS.get(method))
        except ValueError:
            raise ViscoverError(f"code length in {text!r} must be a whole number of bits") from None

    @property
    def binary(self) -> bool:
        return self.method != RAW


@dataclass(frozen=True)
class GridRow:
    """One line of the table: which features, how they are compared."""

    backbone: str
    layer: str
    binarization: Binarization
    metric: str


@dataclass
class RowResult:
    row: GridRow
    bits: int | None  # actual code length (binary rows)
    bytes_per_item: int
    scores: RetrievalScores
    noise_per_query: float | None  # mean number of noise images in a real query's top max(K)


@dataclass
class StudyResult:
    rows: list[RowResult]
    items: int
    queries: int
    ks: tuple[int, ...]
    seed: int
    noise: int


def plan_grid(
    backbones: Sequence[str], layers: Sequence[str], binarizations: Sequence[str], metrics: Sequence[str]
) -> list[GridRow]:
    """The valid rows of the cross product; raw features pair with L2/L1, binary codes with Hamming.
    A binarization or metric that no row can use is refused, naming it."""
    for name, values in (
        ("backbones", backbones),
        ("layers", layers),
        ("binarizations", binarizations),
        ("metrics", metrics),
    ):
        if not values or any(not v for v in values):
            raise ViscoverError(f"--{name.removesuffix('s') if name != 'metrics' else 'metric'}: empty name in list")
    parsed = [Binarization.parse(b) for b in binarizations]
    unknown = [m for m in metrics if m not in ("l2", "l1", "hamming")]
    if unknown:
        raise ViscoverError(f"unknown metric {unknown[0]!r}; use l2, l1 or hamming")
    for binarization in parsed:
        usable = ["hamming"] if binarization.binary else ["l2", "l1"]
        if not set(usable) & set(metrics):
            raise ViscoverError(
                f"binarization {binarization.method!r} needs metric {' or '.join(usable)}, but only "
                f"{', '.join(metrics)} was asked for"
            )
    for metric in metrics:
        if not any(b.binary == (metric == "hamming") for b in parsed):
            need = "a binarizer (sign, median, itq)" if metric == "hamming" else "raw features (none)"
            raise ViscoverError(f"metric {metric!r} needs {need} in --binarize")
    return [
        GridRow(backbone, layer, binarization, metric)
        for backbone in backbones
        for layer in layers
        for binarization in parsed
        for metric in metrics
        if binarization.binary == (metric == "hamming")
    ]


def run_study(
    engine: Engine,
    rows: Sequence[GridRow],
    ks: Sequence[int] = (1, 5, 10),
    queries: int = 2000,
    seed: int = 0,
    exclude: Sequence[str] = (),
    noise: int = 0,
    progress: bool = True,
    only_keys: set[int] | None = None,
) -> StudyResult:
    """Score every row on the engine's labelled catalog (or its `only_keys` pins) with one seeded query sample."""
    ks = tuple(sorted(set(ks)))
    if not ks or ks[0] < 1:
        raise ViscoverError(f"K values must be positive integers, got {ks}")
    category = engine.catalog.categories()
    if not any(category.values()):
        raise ViscoverError(f"the catalog at {engine.settings.home} has no labelled pins (category column)")
    results: list[RowResult] = []
    query_positions: np.ndarray | None = None
    for backbone, layer in dict.fromkeys((r.backbone, r.layer) for r in rows):
        model = engine.extract(backbone, layer, progress).model
        keys, vectors = _features(engine, model, only_keys)
        labels = np.array([category[int(k)] or "" for k in keys], dtype=object)
        if query_positions is None:
            query_positions = _sample(labels, queries, seed, exclude)
        noise_vectors = _noise_features(engine, model, noise, seed)
        noise_keys = np.arange(noise) + int(keys.max()) + 1
        binarizers: dict[Binarization, Binarizer] = {}
        for row in (r for r in rows if (r.backbone, r.layer) == (backbone, layer)):
            if row.binarization.binary:
                if row.binarization not in binarizers:
                    binarizers[row.binarization] = Binarizer(row.binarization.method, row.binarization.bits).fit(
                        vectors
                    )
                encode = binarizers[row.binarization].transform
                dim = bits = binarizers[row.binarization].code_bits_
            else:
                encode, dim, bits = (lambda v: v), vectors.shape[1], None
            data = encode(vectors)
            index = VectorIndex.create("BFlat" if row.binarization.binary else "Flat", row.metric, dim)
            index.add(keys, data)
            scores = score_retrieval(index, data, keys, labels, query_positions, ks)
            noise_per_query = None
            if noise:
                index.add(noise_keys, encode(noise_vectors))
                _, found = index.search(data[query_positions], ks[-1])
                noise_per_query = float((found >= noise_keys[0]).sum(axis=1).mean())
            results.append(RowResult(row, bits, data.shape[1] * data.itemsize, scores, noise_per_query))
    return StudyResult(results, len(keys), len(query_positions), ks, seed, noise)


def _features(engine: Engine, model: str, only_keys: set[int] | None) -> tuple[np.ndarray, np.ndarray]:
    keys, vectors = engine.catalog.features(model)
    if only_keys is None:
        return keys, vectors
    keep = np.isin(keys, np.fromiter(only_keys, dtype=np.int64))
    return keys[keep], vectors[keep]


def _sample(labels: np.ndarray, count: int, seed: int, exclude: Sequence[str]) -> np.ndarray:
    """Seeded queries; a class with a single image can never have a relevant result, so it is refused."""
    counts = Counter(label for label in labels.tolist() if label and label not in exclude)
    single = sorted(label for label, n in counts.items() if n < 2)
    if single:
        raise ViscoverError(
            f"classes with a single image cannot be queried: {', '.join(single[:10])}"
            f"{' …' if len(single) > 10 else ''}; add images or list them in --exclude"
        )
    positions = sample_queries([label or None for label in labels.tolist()], count, seed, exclude)
    if not len(positions):
        raise ViscoverError("no labelled pins are left to query after --exclude")
    return positions


def _noise_features(engine: Engine, model: str, count: int, seed: int) -> np.ndarray:
    """Features of `count` seeded white-noise images (Figure 5's distractors), embedded in batches."""
    embedder = engine.embedder(model)
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, count, engine.settings.batch_size):
        n = min(engine.settings.batch_size, count - start)
        pixels = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
        out.append(embedder.embed([Image.fromarray(p) for p in pixels]))
    return np.concatenate(out) if out else np.empty((0, 0), np.float32)


def feature_map_sample(
    engine: Engine,
    row: GridRow,
    classes: int = 10,
    noise: int = 0,
    seed: int = 0,
    exclude: Sequence[str] = (),
    only_keys: set[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Raw features, binary codes and labels of `classes` seeded classes (plus noise images) for a 2-D map.
    The binarizer learns from all the pins studied, as in the study."""
    model = engine.extract(row.backbone, row.layer, progress=False).model
    keys, vectors = _features(engine, model, only_keys)
    category = engine.catalog.categories()
    labels = np.array([category[int(k)] or "" for k in keys], dtype=object)
    names = sorted({label for label in labels.tolist() if label and label not in exclude})
    chosen = np.random.default_rng(seed).choice(names, size=min(classes, len(names)), replace=False)
    mask = np.isin(labels, chosen)
    binarization = row.binarization if row.binarization.binary else Binarization("itq", DEFAULT_BITS["itq"])
    binarizer = Binarizer(binarization.method, binarization.bits).fit(vectors)
    raw = vectors[mask]
    shown = labels[mask].tolist()
    if noise:
        raw = np.concatenate([raw, _noise_features(engine, model, noise, seed)])
        shown += [NOISE_LABEL] * noise
    return raw, binarizer.transform(raw), shown
