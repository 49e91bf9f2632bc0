"""Lens over a real home (Caltech-101 classes and COCO scenes, objects indexed): what it understands of a photo,
a feed blended from three sources with their reasons, triggers that skip a source, steering, and the same from
the command line and over HTTP."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import caltech_image, coco_val_image
from tests.serve.conftest import start
from tests.serve.test_api import error_of, upload
from tests.test_cli import viscover
from viscover import BytesQuery, PinQuery, Searcher
from viscover.errors import BadArgumentError
from viscover.lens import Lens

ROOM = coco_val_image(139)  # 640x426: a tv, chairs, a person; in the catalog as a scene
# every source on and firing, with shares large enough to show each in a short feed (the shipped precisions give
# object search, whose measured precision is low, a small share)
EVERY_SOURCE = {
    "lens_sources": ["visual", "text", "object"],
    "dot_min_conformity": 0.0,
    "lens_text_min_annotation": 0.0,
    "lens_object_precision": 0.4,
}


@pytest.fixture(scope="module")
def home(lens_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("lens") / "home"
    shutil.copytree(lens_home, copy)
    return copy


def lens(home: Path, **overrides: object) -> Lens:
    return Lens(Searcher.open(home, **{**EVERY_SOURCE, **overrides}))


def test_a_photo_is_understood_and_answered_by_three_sources(home: Path) -> None:
    result = lens(home).look(BytesQuery(ROOM.read_bytes()), k=12)
    seen = result.understanding
    assert (seen.width, seen.height) == (640, 426)
    assert seen.annotations[0].term == "scenes" and seen.category == "scenes" and 0 < seen.conformity <= 1
    assert {"tv", "chair"} <= {dot.label for dot in seen.objects if dot.shown}
    assert seen.colours and abs(sum(c.share for c in seen.colours) - 1) < 0.2
    assert {p.source for p in result.feed} == {"visual", "text", "object"}
    keys = [p.candidate.hit.key for p in result.feed]
    assert len(keys) == 12 and len(set(keys)) == 12 and [p.rank for p in result.feed] == list(range(1, 13))
    for placed in result.feed:
        assert placed.candidate.why and placed.candidate.signals
        if placed.source == "object":
            assert placed.candidate.hit.object is not None  # the matched object in that scene
        if placed.source == "text":
            assert placed.candidate.why.startswith("text: “")
    mix = {share.name: share for share in result.mix}
    assert all(share.fired for share in mix.values()) and sum(share.quota for share in mix.values()) == pytest.approx(1)
    assert sum(share.placed for share in mix.values()) == 12
    assert mix["visual"].quota > mix["text"].quota  # visual's measured precision is the higher


def test_triggers_skip_a_source_and_say_why(home: Path) -> None:
    query = BytesQuery(ROOM.read_bytes())
    shy = lens(home, lens_text_min_annotation=1000.0, dot_min_detector=1.0).look(query, k=6)
    mix = {share.name: share for share in shy.mix}
    assert not mix["text"].fired and "under the trigger 1000" in mix["text"].reason
    assert not mix["object"].fired
    assert mix["object"].reason == "no detected object passed the dot filter, and it is no product shot"
    assert {p.source for p in shy.feed} == {"visual"} and len(shy.feed) == 6
    visual_only = Lens(Searcher.open(home, lens_sources=["visual"])).look(query, k=6)
    assert {s.name: s.reason for s in visual_only.mix}["object"] == "off in settings: lens_sources"
    shipped = Lens(Searcher.open(home)).look(query, k=6)  # this catalog's annotations score under the trigger
    assert {s.name: s.reason for s in shipped.mix}["text"] == "top annotation 1.044 under the trigger 1.684"


def test_a_product_shot_asks_object_search_for_scenes_holding_it(home: Path) -> None:
    shot = Image.new("RGB", (400, 400), "white")  # a product on a plain backdrop: the paper's Figure 14 query
    shot.paste(Image.open(ROOM).convert("RGB").crop((5, 165, 180, 320)).resize((240, 200)), (80, 100))  # the tv
    data = io.BytesIO()
    shot.save(data, "JPEG")
    result = lens(home, dot_min_detector=1.0).look(BytesQuery(data.getvalue()), k=10)
    mix = {share.name: share for share in result.mix}
    assert mix["object"].fired and mix["object"].reason == "searched this product"
    scenes = [p for p in result.feed if p.source == "object"]
    assert scenes and all(p.candidate.why.startswith("a scene holding an object like this product") for p in scenes)


def test_a_term_steers_every_source_and_a_catalog_pin_is_left_out_of_its_feed(home: Path) -> None:
    searcher = Searcher.open(home, **EVERY_SOURCE)
    own = next(pin for pin in searcher.catalog if pin.category == "airplanes")
    result = Lens(searcher).look(PinQuery(own.pin_id), k=6, term=" Airplanes ")  # written as annotations are
    assert result.term == "airplanes" and own.pin_id not in {p.candidate.hit.pin_id for p in result.feed}
    assert len(result.feed) == 5 and all(p.candidate.hit.pin.category == "airplanes" for p in result.feed)
    assert {s.name: s.reason for s in result.mix}["text"] == "steered to 'airplanes'"
    # words FTS5 would read as syntax are searched as words: no error, and nothing carries them
    odd = Lens(searcher).look(PinQuery(own.pin_id), k=4, term='t-shirt" OR NEAR(a*')
    assert odd.feed == [] and odd.understanding.annotations
    with pytest.raises(BadArgumentError, match="term: 'the of' is no annotation"):
        Lens(searcher).look(PinQuery(own.pin_id), k=4, term="the of")


def test_the_command_line_prints_the_understanding_and_the_feed(home: Path) -> None:
    env = {"VISCOVER_LENS_SOURCES": '["visual", "text", "object"]', "VISCOVER_DOT_MIN_CONFORMITY": "0"}
    answer = viscover("lens", str(ROOM), "-k", "5", "--json", home=home, **env)
    assert answer.returncode == 0, answer.stderr
    record = json.loads(answer.stdout)
    assert record["understanding"]["category"] == "scenes" and record["understanding"]["colours"]
    assert len(record["feed"]) == 5 and all(r["why"] and r["source"] for r in record["feed"])
    assert {share["name"] for share in record["mix"]} == {"visual", "text", "object"}
    plain = viscover(
        "lens", str(caltech_image("pagoda", 30)), "-k", "3", home=home, VISCOVER_LENS_TEXT_MIN_ANNOTATION="0"
    )
    assert plain.returncode == 0 and "annotations: pagoda" in plain.stdout and "source text: fired" in plain.stdout
    missing = viscover("lens", "no-such-photo.jpg", home=home)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_lens_and_object_search_over_http(home: Path) -> None:
    for server in start(home, **EVERY_SOURCE):
        with httpx.Client(base_url=server.url, timeout=120) as client:
            answer = client.post("/v1/lens", files=upload(ROOM), data={"k": "8"})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            seen = body["understanding"]
            assert seen["category"] == "scenes" and seen["annotations"] and seen["colours"][0]["rgb"].startswith("#")
            shown = [dot for dot in seen["objects"] if dot["shown"]]
            assert shown and len(body["results"]) == 8 and len({r["source"] for r in body["results"]}) >= 2
            assert all(r["why"] and r["thumbnail_url"] for r in body["results"])
            assert {m["name"] for m in body["mix"] if m["fired"]} == {"visual", "text", "object"}
            steered = client.post("/v1/lens", files=upload(ROOM), data={"k": "4", "term": "  Scenes "}).json()
            assert steered["term"] == "scenes" and all(r["category"] == "scenes" for r in steered["results"])
            scenes = client.post("/v1/search/objects", files=upload(ROOM), data={"crop": shown[0]["crop"], "k": "3"})
            assert scenes.status_code == 200, scenes.text
            hits = scenes.json()["results"]
            assert len(hits) == 3 and all(h["source"] == "object" and len(h["object_box"]) == 4 for h in hits)
            error_of(client.post("/v1/lens", data={"k": "3"}), 422, "image")
            error_of(client.post("/v1/lens", data={"pin_id": "no-such-pin"}), 404, "pin_id")
            error_of(client.post("/v1/lens", files=upload(ROOM), data={"term": "the of"}), 422, "term")
            error_of(client.post("/v1/lens", files={"image": ("x.jpg", b"not an image", "image/jpeg")}), 422, "image")
            error_of(client.post("/v1/search/objects", files=upload(ROOM), data={"crop": "0,0,9999,10"}), 422, "crop")
