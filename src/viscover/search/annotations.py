"""Annotations (sections 7 and 8): the terms of a result list's pins, aggregated by tf-idf, to show as clickable chips,
and the category conformity of a result list. Plain arithmetic over hits, their pins' term counts and labels."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from viscover.search.results import SearchHit

METHODS = ("tfidf", "similarity")
TermCounts = Mapping[int, Mapping[str, tuple[int, int]]]  # pin key → term → (count in the pin, document frequency)


@dataclass(frozen=True)
class Annotation:
    term: str
    score: float  # mean tf-idf of the term per result pin (`tfidf`), or its similarity-weighted mean


def idf(document_frequency: int, pins: int) -> float:
    """Smoothed inverse document frequency, as scikit-learn's TfidfTransformer computes it."""
    return math.log((1 + pins) / (1 + document_frequency)) + 1


def annotate(
    hits: Sequence[SearchHit], terms: TermCounts, pins: int, method: str = "tfidf", count: int = 8
) -> list[Annotation]:
    """The `count` best terms of the hits' pins.

    `tfidf` is the paper's aggregation: a term's tf-idf summed over the result pins, divided by how many
    there are. `similarity` weighs each pin's share by how similar it is to the query."""
    if method not in METHODS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(METHODS)}")
    if not hits:
        return []
    weights = [hit.similarity if method == "similarity" else 1.0 for hit in hits]
    total = sum(weights) or 1.0
    scores: Counter[str] = Counter()
    for hit, weight in zip(hits, weights, strict=True):
        for term, (tf, df) in terms.get(hit.key, {}).items():
            scores[term] += weight * tf * idf(df, pins)
    return best_terms({term: score / total for term, score in scores.items()}, count)


def best_terms(scores: Mapping[str, float], count: int) -> list[Annotation]:
    """The `count` best-scored terms, leaving out a term inside a term already chosen ("blue" after "navy
    blue"), so the chips say different things; on equal scores the longer phrase comes first."""
    chosen: list[Annotation] = []
    for term, score in sorted(scores.items(), key=lambda item: (-item[1], -item[0].count(" "), item[0])):
        if not any(f" {term} " in f" {better.term} " for better in chosen):
            chosen.append(Annotation(term, score))
            if len(chosen) == count:
                break
    return chosen


def conformity(hits: Sequence[SearchHit]) -> float:
    """The largest share of the hits with one category, among the hits that have a category (0 without any)."""
    categories = Counter(hit.pin.category for hit in hits if hit.pin.category)
    return max(categories.values()) / sum(categories.values()) if categories else 0.0


def label_share(hits: Sequence[SearchHit], label: str, labels: Mapping[int, Collection[str]]) -> float:
    """The share of the hits whose pins carry `label` (`labels`: pin key → its labels; a pin not in it carries
    none): how far visual search agrees with what the detector called the box (0 without hits)."""
    return sum(label in labels.get(hit.key, ()) for hit in hits) / len(hits) if hits else 0.0
