"""Lens's blender (section 8): one feed from several sources' result lists.

Each source that fired gets a quota, its share of the feed, in proportion to the precision measured for it at
its confidence (`docs/results/lens`, stored as settings). The feed is filled one place at a time by the source
furthest behind its quota; a result whose pin, or a near-duplicate of it, is already in the feed is skipped.
Every placed result keeps its source, why it was found, and its signals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from viscover.search import SearchHit


@dataclass(frozen=True)
class Candidate:
    """One result a source offers, with why it was found and the numbers behind that."""

    hit: SearchHit
    why: str
    signals: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceResults:
    """What one source gave: whether its trigger held (and why or why not), the precision expected of it at its
    confidence, and its candidates, best first."""

    name: str
    fired: bool
    reason: str
    precision: float = 0.0
    candidates: Sequence[Candidate] = ()


@dataclass(frozen=True)
class Placed:
    """A result in the blended feed."""

    rank: int
    source: str
    candidate: Candidate


@dataclass(frozen=True)
class SourceShare:
    """How one source took part in a feed: the explanation of the mix."""

    name: str
    fired: bool
    reason: str
    precision: float
    quota: float  # its share of the feed (0 when it did not fire or had nothing)
    offered: int
    placed: int


def quotas(sources: Sequence[SourceResults]) -> dict[str, float]:
    """Each fired source's share of the feed, in proportion to its expected precision (equal shares when no
    source has a positive one)."""
    live = [s for s in sources if s.fired and s.candidates]
    weights = {s.name: max(s.precision, 0.0) for s in live}
    total = sum(weights.values())
    if total <= 0:
        return {s.name: 1 / len(live) for s in live}
    return {name: weight / total for name, weight in weights.items()}


def blend(sources: Sequence[SourceResults], k: int) -> tuple[list[Placed], list[SourceShare]]:
    """Up to `k` results from the sources by their quotas, no pin or near-duplicate group twice; ties go to the
    source listed first."""
    if len({s.name for s in sources}) != len(sources):
        raise ValueError("each source may appear once in a blend")
    shares = quotas(sources)
    queues = {name: list(next(s for s in sources if s.name == name).candidates) for name in shares}
    placed_by: dict[str, int] = dict.fromkeys(shares, 0)
    seen: set[str] = set()  # pin ids shown, with their near-duplicates
    feed: list[Placed] = []
    while len(feed) < k and any(queues.values()):
        # the source furthest behind its quota at the next place
        name = max((n for n in shares if queues[n]), key=lambda n: shares[n] * (len(feed) + 1) - placed_by[n])
        candidate = queues[name].pop(0)
        hit = candidate.hit
        group = {hit.pin_id, *hit.near_duplicates}
        if group & seen:
            continue
        seen |= group
        placed_by[name] += 1
        feed.append(Placed(len(feed) + 1, name, candidate))
    mix = [
        SourceShare(
            s.name, s.fired, s.reason, s.precision, shares.get(s.name, 0.0), len(s.candidates), placed_by.get(s.name, 0)
        )
        for s in sources
    ]
    return feed, mix
