"""`GET /v1/pins/{id}/related` over a real server: pages, sources and score parts, errors, and live board saves."""

from __future__ import annotations

import json

import httpx

from tests.conftest import IKEA, IKEA_ROOMS
from tests.serve.conftest import LiveServer


def rooms() -> list[dict]:
    return [json.loads(line) for line in (IKEA / "rooms.jsonl").read_text().splitlines()][:IKEA_ROOMS]


def test_related_pages_sources_and_errors(ikea_server: LiveServer) -> None:
    query = rooms()[0]["products"][0]
    with httpx.Client(base_url=ikea_server.url, timeout=60) as client:
        first = client.get(f"/v1/pins/{query}/related", params={"k": 5})
        assert first.status_code == 200, first.text
        page = first.json()
        assert page["ranker"].startswith("warm ") and ", cold " in page["ranker"] and page["next_offset"] == 5
        assert "unranked" not in page["ranker"]  # every board teaches once, in its fold: enough for both kinds
        assert [r["rank"] for r in page["results"]] == [1, 2, 3, 4, 5]
        assert all(r["sources"] and r["contributions"] and r["thumbnail_url"] for r in page["results"])
        assert all(abs(sum(r["contributions"].values()) - r["score"]) < 1e-6 for r in page["results"])
        second = client.get(f"/v1/pins/{query}/related", params={"k": 5, "offset": 5}).json()
        assert [r["rank"] for r in second["results"]] == [6, 7, 8, 9, 10]
        both = client.get(f"/v1/pins/{query}/related", params={"k": 10}).json()["results"]
        assert [r["pin_id"] for r in both] == [r["pin_id"] for r in page["results"] + second["results"]]

        missing = client.get("/v1/pins/no-such-pin/related")
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "pin_id"
        for bad in ({"k": 0}, {"k": 101}, {"offset": -1}, {"offset": "x"}):
            answer = client.get(f"/v1/pins/{query}/related", params=bad)
            assert answer.status_code == 422 and "Traceback" not in answer.text


def test_a_new_board_save_shows_up_in_related_at_once(ikea_server: LiveServer) -> None:
    room = rooms()[1]
    query = room["products"][0]
    outsider = rooms()[2]["products"][-1]
    image = (IKEA / "products" / f"{outsider}.jpg").read_bytes()
    with httpx.Client(base_url=ikea_server.url, timeout=60) as client:
        before = every_page(client, query)
        assert "cooccurrence" not in next((r["sources"] for r in before if r["pin_id"] == outsider), [])
        saved = client.post(
            "/v1/pins", files={"image": ("x.jpg", image)}, data={"pin_id": outsider, "boards": room["room"]}
        )
        assert saved.status_code == 201 and saved.json()["change"] == "updated", saved.text
        after = every_page(client, query)
        assert "cooccurrence" in next(r["sources"] for r in after if r["pin_id"] == outsider)


def every_page(client: httpx.Client, pin_id: str) -> list[dict]:
    """Every related pin, page after page; ranks run on without a gap."""
    results, offset = [], 0
    while offset is not None:
        page = client.get(f"/v1/pins/{pin_id}/related", params={"k": 100, "offset": offset}).json()
        results += page["results"]
        offset = page["next_offset"]
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
    return results
