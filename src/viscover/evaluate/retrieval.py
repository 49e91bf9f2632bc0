"""The paper's offline retrieval protocol (section 4): Precision@K by class label, the query itself
never counted as a result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from viscover.errors import NotEnoughDataError
from viscover.index import VectorIndex


@dataclass(frozen=True)
class RetrievalScores:
    """Mean P@K and mAP@K over the queries, keyed by K."""

    queries: int
    precision: dict[int, float]
    mean_average_precision: dict[int, float]


def sample_queries(labels: Sequence[str | None], count: int, seed: int, exclude: Sequence[str] = ()) -> np.ndarray:
    """Seeded positions of up to `count` labelled items, never from an `exclude`d (clutter) label."""
    eligible = np.flatnonzero([label is not None and label not in exclude for label in labels])
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, size=min(count, len(eligible)), replace=False))


def relevance_matrix(
    index: VectorIndex, data: np.ndarray, keys: np.ndarray, labels: np.ndarray, queries: np.ndarray, depth: int
) -> np.ndarray:
    """(Q, depth) booleans: does the i-th result (query itself removed) share the query's label?"""
    if depth >= len(keys):
        raise NotEnoughDataError(
            f"K={depth} needs more than {depth} indexed items besides the query; have {len(keys) - 1}"
        )
    _, found = index.search(data[queries], depth + 1)
    label_of = dict(zip(keys.tolist(), labels.tolist(), strict=True))
    rows = []
    for query, hits in zip(queries, found, strict=True):
        others = [h for h in hits.tolist() if h != keys[query] and h >= 0][:depth]
        rows.append([label_of[h] == labels[query] for h in others])
    return np.asarray(rows, dtype=bool)


def precision_at_k(relevant: np.ndarray, k: int) -> float:
    """Mean fraction of relevant results among the first k."""
    return float(relevant[:, :k].mean())


def average_precision_at_k(relevant: np.ndarray, k: int) -> float:
    """Mean over queries of AP@k: precision at each relevant rank ≤ k, averaged over the relevant hits."""
    top = relevant[:, :k].astype(np.float64)
    precision_at_rank = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    hits = top.sum(axis=1)
    per_query = np.divide((precision_at_rank * top).sum(axis=1), hits, out=np.zeros_like(hits), where=hits > 0)
    return float(per_query.mean())


def score_retrieval(
    index: VectorIndex, data: np.ndarray, keys: np.ndarray, labels: np.ndarray, queries: np.ndarray, ks: Sequence[int]
) -> RetrievalScores:
    """P@K and mAP@K for every K in `ks`, from one search of depth max(ks)."""
    relevant = relevance_matrix(index, data, keys, labels, queries, max(ks))
    return RetrievalScores(
        len(queries),
        {k: precision_at_k(relevant, k) for k in ks},
        {k: average_precision_at_k(relevant, k) for k in ks},
    )
