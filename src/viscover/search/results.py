"""One result type for every source (visual search, object search, and the products' text and related
sources): what was found, how far it is, and a similarity in [0, 1] that means the same across sources.

Similarity per metric:
- hamming: 1 - d / bits (d differing bits of `bits`-bit codes);
- l2 on unit-length vectors: 1 - d^2 / 4 (that is (1 + cosine) / 2);
- l1 on vectors of unit L1 norm: 1 - d / 2 (for non-negative features, the histogram intersection).
Scores with no natural scale (BM25, graph scores) are divided by the query's best score (`relative_scores`)
and marked `calibrated=False`: comparable within one result list, not across queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from viscover.ingest import Pin, StoredObject


@dataclass(frozen=True)
class SearchHit:
    """One result: the pin, where it came from, its raw distance and similarity, and near-duplicates folded
    into it (object hits also carry the matched object)."""

    rank: int
    pin: Pin
    source: str  # "visual" (whole images) or "object" (scenes holding a similar object)
    metric: str  # "hamming", "l2" or "l1"
    distance: float
    code_bits: int | None  # length of the binary codes compared; None for raw features
    similarity: float
    calibrated: bool = True
    near_duplicates: tuple[str, ...] = ()
    object: StoredObject | None = None

    @property
    def key(self) -> int:
        return self.pin.key

    @property
    def pin_id(self) -> str:
        return self.pin.pin_id


def similarity(metric: str, distance: float, code_bits: int | None = None) -> float:
    """The similarity in [0, 1] of a raw distance under `metric` (see the module docstring)."""
    if metric == "hamming":
        if not code_bits:
            raise ValueError("hamming similarity needs the code length")
        value = 1 - distance / code_bits
    elif metric == "l2":
        value = 1 - distance * distance / 4
    elif metric == "l1":
        value = 1 - distance / 2
    else:
        raise ValueError(f"no similarity is defined for metric {metric!r}")
    return float(np.clip(value, 0.0, 1.0))


def relative_scores(scores: Sequence[float], best: float | None = None) -> list[float]:
    """Similarities for scores with no natural scale (BM25, graph scores): each divided by the query's best
    (the best of `scores` unless given: a later page passes the first page's), so the best is 1. Hits built
    from them carry `calibrated=False`."""
    best = max(scores, default=0.0) if best is None else best
    return [min(1.0, float(score) / best) if best > 0 else 0.0 for score in scores]


def unit_vectors(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors scaled to unit L2 norm (for l2) or unit L1 norm (for l1), so similarities stay in [0, 1]."""
    order = 2 if metric == "l2" else 1
    norms = np.linalg.norm(vectors, ord=order, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
