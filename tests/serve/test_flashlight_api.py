"""Flashlight over HTTP, through the session's real server: annotations with every first page, results
narrowed to an annotation (with pages), dots with their signals, and keyword search."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import COCO_MINI, caltech_image
from tests.serve.conftest import start
from tests.serve.test_api import error_of, search, upload
from viscover.config import Settings


def test_first_pages_carry_annotations_and_a_term_narrows_in_visual_order(client: httpx.Client) -> None:
    files = upload(caltech_image("Motorbikes", 22))
    first = search(client, files, k=5).json()
    terms = [a["term"] for a in first["annotations"]]
    assert set(terms) <= {"accordion", "airplanes", "leopards", "motorbikes", "pagoda"} and "motorbikes" in terms
    assert all(a["score"] > 0 for a in first["annotations"])
    assert search(client, k=5, cursor=first["next_cursor"]).json()["annotations"] is None  # first pages only
    narrowed = search(client, files, k=4, term="pagoda").json()
    assert narrowed["term"] == "pagoda" and [h["category"] for h in narrowed["results"]] == ["pagoda"] * 4
    ranks = [h["rank"] for h in narrowed["results"]]
    assert ranks == sorted(ranks)  # the visual order, with the other pins left out
    rest = search(client, k=4, cursor=narrowed["next_cursor"]).json()
    assert rest["term"] == "pagoda" and [h["category"] for h in rest["results"]] == ["pagoda"] * 2
    assert rest["results"][0]["rank"] > ranks[-1] and rest["next_cursor"] is None
    pin = first["results"][0]["pin_id"]
    similar = client.get(f"/v1/pins/{pin}/similar", params={"k": 3, "term": "Airplanes"}).json()
    assert similar["term"] == "airplanes" and [h["category"] for h in similar["results"]] == ["airplanes"] * 3


def test_a_term_is_written_as_annotations_write_it_or_refused(client: httpx.Client) -> None:
    files = upload(caltech_image("Motorbikes", 22))
    assert search(client, files, k=2, term="  PAGODA ").json()["term"] == "pagoda"
    error_of(search(client, files, k=2, term="the and of"), 422, "term")
    narrowed = search(client, files, k=2, term="pagoda").json()
    error_of(search(client, k=2, cursor=narrowed["next_cursor"], term="leopards"), 422, "term")
    same = search(client, k=2, cursor=narrowed["next_cursor"], term="Pagoda").json()
    assert [h["category"] for h in same["results"]] == ["pagoda"] * 2


def test_flashlight_answers_results_annotations_and_dots(client: httpx.Client, scene: Path) -> None:
    room = COCO_MINI / "val2017" / "000000000139.jpg"  # 640x426: a tv, chairs, a person
    answer = client.post("/v1/flashlight", files=upload(room), data={"k": "6"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["page"]["results"]) == 6 and body["page"]["annotations"]
    dots = body["dots"]
    assert {"tv", "chair"} <= {d["label"] for d in dots}
    for dot in dots:
        x0, y0, x1, y1 = dot["box"]
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 426 and len(dot["crop"].split(",")) == 4
        assert 0 <= dot["similarity"] <= 1 and 0 <= dot["conformity"] <= 1 and dot["annotation"] >= 0
        assert dot["shown"]  # the session's server asks only for the detector's score, as detection does
    least, stored = Settings.model_fields["dot_min_detector"].default, Settings.model_fields["min_score"].default
    assert min(d["score"] for d in dots) >= least and any(d["score"] < stored for d in dots)  # an upload: afresh
    cropped = client.post("/v1/flashlight", files=upload(scene), data={"crop": "0,0,300,220"}).json()
    assert cropped["dots"] is None and cropped["page"]["results"][0]["category"] == "airplanes"
    error_of(client.post("/v1/flashlight", data={"pin_id": "no-such-pin"}), 404, "pin_id")


def test_dots_are_on_where_objects_are_stored_and_hidden_where_no_result_carries_their_label(
    served_home: Path,
) -> None:
    room = COCO_MINI / "val2017" / "000000000139.jpg"  # a tv and chairs, over a catalog of Caltech classes
    for server in start(served_home):  # the shipped settings, on a home `viscover objects` has not run on
        with httpx.Client(base_url=server.url, timeout=60) as session:
            body = session.post("/v1/flashlight", files=upload(room), data={"k": "3"}).json()
        assert body["dots"] is None and len(body["page"]["results"]) == 3
    for server in start(served_home, dots=True):  # asked for: detected and judged by the shipped thresholds
        with httpx.Client(base_url=server.url, timeout=60) as session:
            body = session.post("/v1/flashlight", files=upload(room), data={"k": "3"}).json()
        assert {"tv", "chair"} <= {d["label"] for d in body["dots"]} and len(body["page"]["results"]) == 3
        # no result pin is a tv or a chair in the detector's words (no stored objects; Caltech categories)
        assert all(d["conformity"] == 0 and not d["shown"] for d in body["dots"])


def test_keyword_search(client: httpx.Client) -> None:
    page = client.get("/v1/search/text", params={"q": "leopards", "k": 4}).json()
    hits = page["results"]
    assert len(hits) == 4 and all(h["category"] == "Leopards" for h in hits) and page["next_offset"] == 4
    assert (hits[0]["source"], hits[0]["metric"], hits[0]["calibrated"], hits[0]["similarity"]) == (
        "text",
        "bm25",
        False,
        1.0,
    )
    more = client.get("/v1/search/text", params={"q": "leopards", "k": 4, "offset": 4}).json()
    assert len(more["results"]) == 2 and more["next_offset"] is None and more["results"][0]["rank"] == 5
    either = client.get("/v1/search/text", params={"q": "pagoda leopards", "any_word": True, "k": 20}).json()
    assert {h["category"] for h in either["results"]} == {"pagoda", "Leopards"}


@pytest.mark.parametrize("words", ["t-shirt", "AND(", 'say "hi', "NEAR(a b)", "*", "category:pagoda"])
def test_keyword_search_takes_any_words(client: httpx.Client, words: str) -> None:
    assert client.get("/v1/search/text", params={"q": words}).status_code == 200


def test_keyword_search_needs_words(client: httpx.Client) -> None:
    error_of(client.get("/v1/search/text", params={"q": ""}), 422, "q")
    error_of(client.get("/v1/search/text"), 422, "q")
