"""The REST API through a real uvicorn server on a loopback port: every route, pages without repeats, every
bad input answered with a 4xx that names the field (never a traceback), the API key, metrics, request ids."""

from __future__ import annotations

import base64
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


def test_cursors_are_signed_kept_to_their_query_and_expire(server: LiveServer, client: httpx.Client) -> None:
    secret = server.app.state.service.secret
    evicted = Cursor("0" * 32, "hamming", 3.0, 1, "x").encode(secret)  # an upload's query the server let go
    error_of(search(client, cursor=evicted), 410, "cursor")
    other_run = Cursor("0" * 32, "hamming", 3.0, 1, "x").encode(b"another run's secret")
    assert "restarted" in error_of(search(client, cursor=other_run), 410, "cursor")["message"]
    first = search(client, upload(caltech_image("airplanes", HELD_OUT)), k=3, metric="l1").json()
    payload, signature = first["next_cursor"].rsplit(".", 1)
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields[2] = 0.0  # start from the top again, says the edit; the signature no longer matches
    edited = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    error_of(search(client, cursor=f"{edited}.{signature}"), 410, "cursor")
    error_of(search(client, cursor="not-a-cursor"), 422, "cursor")
    second = search(client, cursor=first["next_cursor"], metric="hamming").json()  # the cursor's metric rules
    assert second["results"][0]["metric"] == "l1" and second["results"][0]["rank"] == 4
    pins = [h["pin_id"] for h in first["results"]]
    theirs = client.get(f"/v1/pins/{pins[0]}/similar", params={"k": 2}).json()["next_cursor"]
    error_of(client.get(f"/v1/pins/{pins[1]}/similar", params={"cursor": theirs}), 422, "cursor")


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
    error_of(client.post("/v1/pins", files=upload(caltech_image("pagoda", HELD_OUT)), data=form), 409, "pin_id")
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
            b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 20971520\r\n\r\n"
        )  # 20 MB announced, not a byte of it sent: the answer cannot wait for the body
        answer = b""
        while chunk := raw.recv(4096):  # the server answers, then closes
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and "VISCOVER_MAX_UPLOAD_MB" in answer
    big = {"image": ("big.bin", b"\0" * (11 * 2**20), "application/octet-stream")}
    error_of(client.post("/v1/search", files=big), 413, "image")

    def chunks():  # a valid form with no declared length: it streams until the server stops reading it
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n'
        for _ in range(12):
            yield b"\0" * 2**20
        yield b"\r\n--b--\r\n"

    streamed = client.post("/v1/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    error_of(streamed, 413, "image")


def test_request_ids_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    for bad in ("bad id; <script>", "x" * 65):  # legal in a header, not as an id: replaced by a fresh one
        assert len(client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]) == 16

    def count(route: str, status: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if (
                line.startswith("viscover_requests_total")
                and f'route="{route}"' in line
                and f'status="{status}"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def observed(route: str) -> float:
        line = f'viscover_request_seconds_count{{method="GET",route="{route}"}}'
        return next(
            (float(x.rsplit(" ", 1)[1]) for x in client.get("/metrics").text.splitlines() if x.startswith(line)), 0
        )

    before, timed = count("/v1/pins/{pin_id}", "200"), observed("/v1/pins/{pin_id}")
    pin_id = client.get("/v1/pins").json()["pins"][0]["pin_id"]
    client.get(f"/v1/pins/{pin_id}")
    client.get(f"/v1/pins/{pin_id}")
    assert count("/v1/pins/{pin_id}", "200") == before + 2  # labelled by route template, not by raw path
    assert observed("/v1/pins/{pin_id}") == timed + 2


@pytest.fixture(scope="module")
def keyed(served_home: Path):
    yield from start(served_home, api_key="s3cret")


def test_with_an_api_key_every_route_but_healthz_wants_it(keyed: LiveServer) -> None:
    with httpx.Client(base_url=keyed.url, timeout=60) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        for path in ("/v1/pins", "/readyz", "/metrics", "/openapi.json"):
            error_of(anonymous.get(path), 401)
        error_of(anonymous.get("/v1/pins", headers={"X-API-Key": "wrong"}), 401)
        not_ascii = {"X-API-Key": "s3crét".encode()}  # refused, not a 500
        error_of(anonymous.get("/v1/pins", headers=not_ascii), 401)
        error_of(anonymous.post("/v1/pins", files=upload(caltech_image("pagoda", HELD_OUT))), 401)
        error_of(anonymous.delete("/v1/pins/anything"), 401)
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


@pytest.mark.parametrize(
    ("method", "path", "files", "form", "code", "field"),
    [
        ("post", "/v1/detect", "text", {}, 422, "image"),
        ("post", "/v1/detect", None, {"pin_id": "no-such-pin"}, 404, "pin_id"),
        ("post", "/v1/detect", None, {}, 422, "image"),
        ("post", "/v1/detect", "scene", {"min_score": "2"}, 422, "min_score"),
        ("post", "/v1/pins", "text", {}, 422, "image"),
        ("post", "/v1/pins", None, {"description": "no image"}, 422, "image"),
        ("post", "/v1/pins", "scene", {"pin_id": ".."}, 422, "pin_id"),
        ("get", "/v1/pins/no-such-pin/similar", None, {}, 404, "pin_id"),
        ("get", "/v1/pins/no-such-pin/thumbnail", None, {}, 404, "pin_id"),
    ],
)
def test_every_route_names_what_is_wrong(client, scene, method, path, files, form, code, field) -> None:
    files = {"text": {"image": ("notes.txt", b"no pixels here", "text/plain")}, "scene": upload(scene)}.get(files)
    response = client.post(path, files=files, data=form) if method == "post" else client.get(path)
    error_of(response, code, field)


def test_uploads_are_stored_by_content_hash_and_odd_ids_stay_addressable(client, served_home: Path) -> None:
    import hashlib

    path = caltech_image("airplanes", 30)
    named = {"image": ("../../evil name.jpg", path.read_bytes())}
    added = client.post("/v1/pins", files=named, data={"pin_id": "a b?c#1"})
    assert added.status_code == 201, added.text
    stored = {p.name for p in (served_home / "uploads").iterdir()}
    assert f"{hashlib.sha256(path.read_bytes()).hexdigest()}.jpg" in stored and not any("evil" in n for n in stored)
    pin = added.json()["pin"]
    assert pin["image_url"].startswith("/v1/pins/a%20b%3Fc%231/image")
    assert client.get(pin["image_url"]).content == path.read_bytes()
    assert client.delete("/v1/pins/a%20b%3Fc%231").status_code == 204


def test_other_hosts_and_other_sites_writes_are_refused(client: httpx.Client, scene: Path) -> None:
    error_of(client.get("/v1/pins", headers={"Host": "attacker.example"}), 400)  # DNS rebinding
    for headers in ({"Origin": "https://attacker.example"}, {"Sec-Fetch-Site": "cross-site"}):
        error_of(client.post("/v1/pins", files=upload(scene), headers=headers), 403)
        error_of(client.delete("/v1/pins/whatever", headers=headers), 403)
    own = client.post("/v1/search", files=upload(scene), headers={"Origin": str(client.base_url).rstrip("/")})
    assert own.status_code == 200  # the page's own requests carry its origin
    assert client.get("/v1/pins", headers={"Origin": "https://attacker.example"}).status_code == 200  # reads: CORS
