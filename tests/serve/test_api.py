"""The REST API through a real uvicorn server on a loopback port: every route, pages without repeats, every
bad input answered with a 4xx that names the field (never a traceback), the API key, metrics, request ids."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import COCO_MINI, caltech_image
from tests.serve.conftest import LiveServer, start
from viscover.serve.service import Cursor

HELD_OUT = 21


def upload(path: Path) -> dict:
    return {"image": (path.name, path.read_bytes(), "image/jpeg")}


def search(client: httpx.Client, files: dict | None = None, **form: object) -> httpx.Response:
    return client.post("/v1/search", files=files, data={k: str(v) for k, v in form.items()})


def error_of(response: httpx.Response, code: int, field: str | None = None) -> dict:
    assert response.status_code == code, response.text
    assert "Traceback" not in response.text and 'File "' not in response.text
    error = response.json()["error"]
    assert error["message"] and error["request_id"] == response.headers["x-request-id"]
    if field is not None:
        assert error["field"] == field, error
    return error


def test_health_readiness_and_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 30
    while (ready := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    body = ready.json()
    assert body["ready"] and body["indexed"] == body["pins"] == 30
    assert body["embedder"]["runtime"] == "onnx" and body["embedder"]["threads"] == 1
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/search", "/v1/pins/{pin_id}/similar", "/v1/pins", "/v1/detect", "/readyz"} <= set(paths)
    assert "swagger" in client.get("/docs").text.lower()
    assert "viscover" in client.get("/").text and client.get("/static/app.js").status_code == 200


def test_search_by_upload_and_by_pin(client: httpx.Client) -> None:
    response = search(client, upload(caltech_image("Leopards", HELD_OUT)), k=5)
    page = response.json()
    hits = page["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5] and hits[0]["category"] == "Leopards"
    first = hits[0]
    assert (first["source"], first["metric"], first["calibrated"]) == ("visual", "hamming", True)
    assert first["similarity"] == pytest.approx(1 - first["distance"] / first["code_bits"])
    assert first["thumbnail_url"].startswith(f"/v1/pins/{first['pin_id']}/thumbnail")
    by_pin = search(client, pin_id=first["pin_id"], k=3).json()["results"]
    similar = client.get(f"/v1/pins/{first['pin_id']}/similar", params={"k": 3}).json()["results"]
    assert by_pin == similar and similar[0]["pin_id"] == first["pin_id"] and similar[0]["distance"] == 0
    assert (
        search(client, upload(caltech_image("Leopards", HELD_OUT)), k=5, metric="l2").json()["results"][0]["metric"]
        == "l2"
    )


def test_a_crop_searches_only_its_box(client: httpx.Client, scene: Path) -> None:
    for crop, category in (("0,0,300,220", "airplanes"), ("300,0,300,220", "Leopards")):
        page = search(client, upload(scene), crop=crop, k=5).json()
        assert page["query"]["crop"] == crop and page["results"][0]["category"] == category


def test_pages_follow_each_other_without_repeats(client: httpx.Client) -> None:
    files = upload(caltech_image("pagoda", HELD_OUT))
    whole = search(client, files, k=40).json()
    seen, cursor, pages = [], None, 0
    while True:
        page = search(client, k=4, cursor=cursor).json() if cursor else search(client, files, k=4).json()
        seen += page["results"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    shown = [h["pin_id"] for h in seen]
    folded = [d for h in seen for d in h["near_duplicates"]]
    assert len(shown) == len(set(shown)) and not set(shown) & set(folded) and pages > 3
    assert shown == [h["pin_id"] for h in whole["results"]] and [h["rank"] for h in seen] == list(
        range(1, 31 - len(folded))
    )
    assert len(shown) + len(folded) == 30
    similar_pages = client.get(f"/v1/pins/{shown[0]}/similar", params={"k": 7}).json()
    second = client.get(f"/v1/pins/{shown[0]}/similar", params={"cursor": similar_pages["next_cursor"], "k": 7})
    assert second.json()["results"][0]["rank"] == 8


def test_a_cursor_the_server_no_longer_holds_is_gone(client: httpx.Client) -> None:
    stale = Cursor("0" * 32, "hamming", 3.0, "nope").encode()
    error_of(search(client, cursor=stale), 410, "cursor")
    error_of(search(client, cursor="not-a-cursor"), 422, "cursor")


def test_pins_their_images_and_the_catalog_listing(client: httpx.Client, served_home: Path) -> None:
    listing = client.get("/v1/pins", params={"limit": 7}).json()
    assert len(listing["pins"]) == 7 and listing["next_after"] == listing["pins"][-1]["key"]
    rest = client.get("/v1/pins", params={"limit": 100, "after": listing["next_after"]}).json()
    assert len(rest["pins"]) == 23 and rest["next_after"] is None
    pin = listing["pins"][0]
    assert client.get(f"/v1/pins/{pin['pin_id']}").json() == pin
    image = client.get(pin["image_url"])
    assert image.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(image.content)).size == (
        pin["width"],
        pin["height"],
    )
    thumbnail = Image.open(io.BytesIO(client.get(pin["thumbnail_url"]).content))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 320


def test_add_then_delete_a_pin_without_a_shell(client: httpx.Client) -> None:
    path = caltech_image("Motorbikes", HELD_OUT)
    form = {"pin_id": "motorbike-21", "description": "a red motorbike", "boards": "garage; bikes", "category": "bikes"}
    added = client.post("/v1/pins", files=upload(path), data=form)
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["change"] == "added" and body["indexed"] and body["pin"]["boards"] == ["garage", "bikes"]
    top = search(client, upload(path), k=1).json()["results"][0]  # 24-bit codes tie: it may be folded in
    assert "motorbike-21" in [top["pin_id"], *top["near_duplicates"]] and top["distance"] == 0
    again = client.post("/v1/pins", files=upload(path), data={"boards": "showroom"}).json()
    assert again["change"] == "updated" and again["pin"]["boards"] == ["garage", "bikes", "showroom"]
    error_of(client.post("/v1/pins", files=upload(caltech_image("pagoda", HELD_OUT)), data=form), 409, "image")
    assert client.delete("/v1/pins/motorbike-21").status_code == 204
    hits = search(client, upload(path), k=5).json()["results"]
    assert "motorbike-21" not in [pin_id for h in hits for pin_id in (h["pin_id"], *h["near_duplicates"])]
    error_of(client.get("/v1/pins/motorbike-21"), 404, "pin_id")
    error_of(client.delete("/v1/pins/motorbike-21"), 404, "pin_id")


def test_detect_an_upload_or_a_pin(client: httpx.Client) -> None:
    scene = COCO_MINI / "val2017" / "000000000139.jpg"
    found = client.post("/v1/detect", files=upload(scene)).json()
    labels = {o["label"] for o in found["objects"]}
    assert (
        found["detector"] == "yolox_nano"
        and {"tv", "chair"} <= labels
        and (found["width"], found["height"])
        == (
            640,
            426,
        )
    )
    assert sum(o["dominant"] for o in found["objects"]) <= 1 and all(len(o["box"]) == 4 for o in found["objects"])
    pin_id = client.get("/v1/pins", params={"limit": 1}).json()["pins"][0]["pin_id"]
    assert client.post("/v1/detect", data={"pin_id": pin_id, "min_score": "0.9"}).status_code == 200


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("files", "form", "code", "field", "words"),
    [
        ({"image": ("notes.jpg", b"just text", "image/jpeg")}, {}, 422, "image", "not an image"),
        (
            {"image": ("half.jpg", caltech_image("pagoda", 1).read_bytes()[:3000], "image/jpeg")},
            {},
            422,
            "image",
            "truncated",
        ),
        ({"image": ("bomb.png", png((12_000, 12_000), "1"), "image/png")}, {}, 422, "image", "bomb"),
        ({"image": ("empty.jpg", b"", "image/jpeg")}, {}, 422, "image", "empty"),
        (None, {"pin_id": "no-such-pin"}, 404, "pin_id", "no-such-pin"),
        (None, {"pin_id": "../../etc/passwd"}, 422, "pin_id", "pattern"),
        (None, {}, 422, "image", "either"),
        ("both", {}, 422, "pin_id", "either"),
        ("scene", {"crop": "10,10,0,20"}, 422, "crop", "no area"),
        ("scene", {"crop": "500,0,200,100"}, 422, "crop", "outside"),
        ("scene", {"crop": "a,b"}, 422, "crop", "four numbers"),
        ("scene", {"k": "0"}, 422, "k", "greater than or equal to 1"),
        ("scene", {"k": "101"}, 422, "k", "less than or equal to 100"),
        ("scene", {"k": "many"}, 422, "k", "integer"),
        ("scene", {"metric": "cosine"}, 422, "metric", "hamming"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_field(client, scene, files, form, code, field, words) -> None:
    if files == "scene":
        files = upload(scene)
    elif files == "both":
        files, form = upload(scene), {"pin_id": client.get("/v1/pins").json()["pins"][0]["pin_id"]}
    error = error_of(search(client, files, **form), code, field)
    assert words in error["message"]


def test_bad_paths_and_routes_answer_in_json(client: httpx.Client) -> None:
    error_of(client.get("/v1/pins/a%2F..%2Fb"), 404)
    error_of(client.get("/v1/nothing-here"), 404)
    error_of(client.get("/v1/pins", params={"limit": 0}), 422, "limit")
    error_of(client.put("/v1/search"), 405)


def test_uploads_over_the_cap_are_refused_before_the_body_is_read(server: LiveServer, client) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 20971520\r\n\r\n"
        )  # 20 MB announced, not a byte of it sent: the answer cannot wait for the body
        answer = b""
        while chunk := raw.recv(4096):  # the server answers, then closes
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and "VISCOVER_MAX_UPLOAD_MB" in answer
    big = {"image": ("big.bin", b"\0" * (11 * 2**20), "application/octet-stream")}
    error_of(client.post("/v1/search", files=big), 413, "image")


def test_request_ids_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    assert len(client.get("/healthz", headers={"X-Request-ID": "bad id\x01"}).headers["x-request-id"]) == 16

    def count(route: str, status: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if (
                line.startswith("viscover_requests_total")
                and f'route="{route}"' in line
                and f'status="{status}"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before, latency_before = count("/v1/pins/{pin_id}", "200"), client.get("/metrics").text
    pin_id = client.get("/v1/pins").json()["pins"][0]["pin_id"]
    client.get(f"/v1/pins/{pin_id}")
    client.get(f"/v1/pins/{pin_id}")
    assert count("/v1/pins/{pin_id}", "200") == before + 2
    assert (
        'viscover_request_seconds_bucket{le="0.01",method="GET",route="/v1/pins/{pin_id}"}'
        in client.get("/metrics").text
        and latency_before
    )


@pytest.fixture(scope="module")
def keyed(served_home: Path):
    yield from start(served_home, api_key="s3cret")


def test_with_an_api_key_every_route_but_healthz_wants_it(keyed: LiveServer) -> None:
    with httpx.Client(base_url=keyed.url, timeout=60) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        for path in ("/v1/pins", "/readyz", "/metrics", "/openapi.json"):
            error_of(anonymous.get(path), 401)
        error_of(anonymous.get("/v1/pins", headers={"X-API-Key": "wrong"}), 401)
        assert anonymous.get("/").status_code == 200  # the page shell holds no data; it asks for the key
    with httpx.Client(base_url=keyed.url, timeout=60, headers={"X-API-Key": "s3cret"}) as member:
        assert member.get("/v1/pins").status_code == 200 and member.get("/metrics").status_code == 200
        assert json.loads(member.get("/openapi.json").text)["components"]["securitySchemes"]["APIKeyHeader"]


def test_the_serve_command_prints_its_url_and_serves(served_home: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "viscover"), "--home", str(served_home), "serve", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip().endswith(f"at http://127.0.0.1:{port}/ (API at /docs)")
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
                time.sleep(0.1)
        httpx.get(f"http://127.0.0.1:{port}/v1/pins", headers={"X-Request-ID": "from-the-test"})
    finally:
        process.terminate()
        log = process.communicate(timeout=30)[1]
    assert 'from-the-test 127.0.0.1 "GET /v1/pins" 200' in log  # one access-log line per request, with its id
