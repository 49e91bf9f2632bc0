"""The blender on hand-made source lists: quotas from precision, de-duplication by pin and near-duplicate group,
a source its trigger skipped, and the explanation of the mix."""

from __future__ import annotations

import pytest

from viscover.ingest import Pin
from viscover.lens import Candidate, SourceResults, blend, quotas
from viscover.lens.lens import precision_at
from viscover.search import SearchHit


def offer(source: str, keys: list[int], near: dict[int, tuple[str, ...]] | None = None) -> list[Candidate]:
    near = near or {}
    hits = [
        SearchHit(
            rank,
            Pin(f"p{key}", f"/x/{key}.jpg", f"s{key}", 10, 10, key=key),
            source,
            "hamming",
            0.0,
            256,
            1.0,
            near_duplicates=near.get(key, ()),
        )
        for rank, key in enumerate(keys, start=1)
    ]
    return [Candidate(hit, f"{source} {hit.key}") for hit in hits]


def test_quotas_follow_precision_among_the_sources_that_fired() -> None:
    sources = [
        SourceResults("visual", True, "always", 0.6, offer("visual", [1])),
        SourceResults("text", True, "confident", 0.3, offer("text", [2])),
        SourceResults("object", False, "no object passed", 0.9, ()),
        SourceResults("empty", True, "fired, found nothing", 0.5, ()),
    ]
    assert quotas(sources) == pytest.approx({"visual": 2 / 3, "text": 1 / 3})
    zero = [SourceResults("a", True, "", 0.0, offer("a", [1])), SourceResults("b", True, "", 0.0, offer("b", [2]))]
    assert quotas(zero) == {"a": 0.5, "b": 0.5}


def test_the_feed_follows_the_quotas_in_order() -> None:
    sources = [
        SourceResults("visual", True, "always", 0.6, offer("visual", list(range(1, 20)))),
        SourceResults("text", True, "confident", 0.3, offer("text", list(range(101, 120)))),
    ]
    feed, mix = blend(sources, 9)
    assert [p.source for p in feed] == ["visual", "text", "visual"] * 3
    assert [p.rank for p in feed] == list(range(1, 10))
    assert [p.candidate.hit.key for p in feed if p.source == "text"] == [101, 102, 103]  # each source's own order
    assert [(m.name, m.placed, m.offered) for m in mix] == [("visual", 6, 19), ("text", 3, 19)]
    assert mix[0].quota == pytest.approx(2 / 3)


def test_a_pin_or_its_near_duplicates_appear_once() -> None:
    sources = [
        SourceResults("visual", True, "", 0.5, offer("visual", [1, 2, 3], near={2: ("p50",)})),
        SourceResults("text", True, "", 0.5, offer("text", [1, 50, 4, 5])),  # 1 is visual's; 50 is 2's near-duplicate
    ]
    feed, mix = blend(sources, 10)
    # text's 1 is skipped; its 50 comes first, so visual's 2 (a near-duplicate of it) is skipped in turn
    assert [p.candidate.hit.key for p in feed] == [1, 50, 3, 4, 5]
    assert [m.placed for m in mix] == [2, 3]


def test_a_source_its_trigger_skipped_gives_nothing_and_says_why() -> None:
    sources = [
        SourceResults("visual", True, "always", 0.5, offer("visual", [1, 2, 3])),
        SourceResults("text", False, "top annotation 0.2 under the trigger 1", 0.9, offer("text", [7, 8])),
    ]
    feed, mix = blend(sources, 5)
    assert [p.source for p in feed] == ["visual"] * 3  # a spent source leaves the rest to the others
    skipped = mix[1]
    assert (skipped.fired, skipped.quota, skipped.placed, skipped.reason) == (
        False,
        0.0,
        0,
        "top annotation 0.2 under the trigger 1",
    )
    with pytest.raises(ValueError, match="once"):
        blend([sources[0], sources[0]], 3)


def test_precision_settings_are_read_by_bucket() -> None:
    table = [(0.0, 0.3), (1.5, 0.6), (3.0, 0.8)]
    assert [precision_at(table, c) for c in (-1.0, 0.0, 1.0, 1.5, 2.9, 10.0)] == [0.3, 0.3, 0.3, 0.6, 0.6, 0.8]
    assert precision_at([], 1.0) == 0.0
