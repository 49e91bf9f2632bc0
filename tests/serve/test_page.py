"""The web page in a real headless browser (Debian's chromium driven by Playwright): upload a photo, draw a crop
box over one object and drag it to another, scroll for more, open a result's closeup, and follow "more like
this". Screenshots of each step land in artifacts/screenshots/."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
from playwright.sync_api import Page

from tests.conftest import COCO_MINI, IKEA, caltech_image
from tests.serve.conftest import LiveServer, screenshot


def top_category_is(page: Page, category: str) -> None:
    page.wait_for_function(
        """([category]) => {
            const first = document.querySelector('#results .result');
            return first && first.dataset.category === category
                && document.getElementById('results-title').textContent.includes('box');
        }""",
        arg=[category],
    )


def test_upload_crop_drag_scroll_closeup_and_more_like_this(server: LiveServer, scene: Path, browser_page) -> None:
    page = browser_page
    searches: list[str] = []
    searching = ("/v1/search", "/v1/flashlight")
    page.on("request", lambda r: searches.append(r.url) if r.method == "POST" and r.url.endswith(searching) else None)
    page.goto(server.url)
    page.wait_for_selector("#catalog .result")  # the catalog to pick from
    page.set_input_files("#file-input", str(scene))
    page.wait_for_selector("#results .result")
    screenshot(page, "1-upload")

    # draw a box over the airplane on the left half
    area = page.locator("#query-image").bounding_box()
    x, y, w, h = area["x"], area["y"], area["width"], area["height"]
    before = len(searches)
    page.mouse.move(x + 4, y + 4)
    page.mouse.down()
    page.mouse.move(x + w / 2 - 4, y + h - 4, steps=10)
    page.mouse.up()
    top_category_is(page, "airplanes")
    assert 1 <= len(searches) - before <= 2
    # the box drawn on screen reaches the server in the original image's pixels (the scene is 600x220)
    x0, y0, bw, bh = map(int, page.locator("#crop-label").inner_text().split()[1].split(","))
    assert x0 <= 10 and y0 <= 10 and 280 <= bw <= 300 and bh >= 200
    screenshot(page, "2-crop-airplane")

    # drag the box onto the leopard, slowly: results refresh while it moves, a few requests per drag
    before = len(searches)
    page.mouse.move(x + w / 4, y + h / 2)
    page.mouse.down()
    for step in range(1, 4):
        page.mouse.move(x + w / 4 + step * w / 6, y + h / 2, steps=6)
        page.wait_for_timeout(400)  # the box rests longer than the debounce: a search while it moves
    page.mouse.up()
    top_category_is(page, "Leopards")
    assert 2 <= len(searches) - before <= 5, searches[before:]
    screenshot(page, "3-crop-leopard")

    # the grid loads more on scroll (24 a page; the catalog holds 30)
    page.locator("#whole-image").click()
    page.wait_for_function("document.querySelectorAll('#results .result').length === 24")
    page.locator("#results-sentinel").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelectorAll('#results .result').length > 24")
    ranks = page.eval_on_selector_all("#results .result", "cards => cards.map(c => Number(c.dataset.rank))")
    assert ranks == list(range(1, len(ranks) + 1))  # the second page follows the first, nothing repeated

    # a result's closeup, and "more like this" under it
    first = page.locator("#results .result").first
    pin_id, category = first.get_attribute("data-pin-id"), first.get_attribute("data-category")
    first.click()
    page.wait_for_url(f"**/pins/{pin_id}")
    page.wait_for_selector("#similar .result")
    assert page.locator("#closeup-category").inner_text() == category
    assert page.locator("#closeup-image").evaluate("img => img.complete && img.naturalWidth > 0")
    similar_ids = page.eval_on_selector_all("#similar .result", "cards => cards.map(c => c.dataset.pinId)")
    assert pin_id not in similar_ids and len(similar_ids) >= 10
    screenshot(page, "4-closeup")
    page.locator("#similar .result").first.click()
    page.wait_for_url(f"**/pins/{similar_ids[0]}")
    page.wait_for_selector("#similar .result")
    screenshot(page, "5-more-like-this")

    # back to a search that starts from this pin, with the cropper over it
    page.locator("#closeup-crop").click()
    page.wait_for_selector("#cropper:not([hidden]) #query-image")
    page.wait_for_selector("#results .result")
    assert page.locator("#results .result").first.get_attribute("data-pin-id") == similar_ids[0]


def test_drop_paste_and_pick_a_pin_of_the_catalog(server: LiveServer, scene: Path, browser_page) -> None:
    page = browser_page
    page.goto(server.url)
    page.wait_for_selector("#catalog .result")
    picked = page.locator("#catalog .result").nth(3)
    pin_id = picked.get_attribute("data-pin-id")
    picked.click()
    page.wait_for_function("([pin]) => new URLSearchParams(location.search).get('pin') === pin", arg=[pin_id])
    page.wait_for_selector("#results .result")
    assert page.locator("#cropper").is_visible()

    def give(event: str, path: Path, category: str) -> None:
        """Drop a file on the cropper, or paste it, as a user would; then wait for its results."""
        page.evaluate(
            """([event, b64]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const data = new DataTransfer();
                data.items.add(new File([bytes], "photo.jpg", { type: "image/jpeg" }));
                if (event === "drop") {
                    document.getElementById("cropper").dispatchEvent(
                        new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
                } else {
                    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data }));
                }
            }""",
            [event, base64.b64encode(path.read_bytes()).decode()],
        )
        page.wait_for_function(
            """([category]) => location.search === '' && document.querySelector('#query-image').src.startsWith('blob:')
                && document.querySelector('#results .result')?.dataset.category === category""",
            arg=[category],
        )

    give("drop", caltech_image("pagoda", 25), "pagoda")
    give("paste", caltech_image("Leopards", 25), "Leopards")
    screenshot(page, "6-pasted")


def test_flashlight_dots_chips_and_words(server: LiveServer, browser_page) -> None:
    page = browser_page
    room = COCO_MINI / "val2017" / "000000000139.jpg"  # a tv and chairs, in none of the catalog's classes
    page.goto(server.url)
    page.set_input_files("#file-input", str(room))
    page.wait_for_selector("#query-dots .dot")
    labels = page.eval_on_selector_all("#query-dots .dot", "dots => dots.map(d => d.dataset.label)")
    assert {"tv", "chair"} <= set(labels)
    screenshot(page, "7-dots")

    # a dot searches its object's box
    tv = page.locator('#query-dots .dot[data-label="tv"]').first
    crop = tv.get_attribute("data-crop")
    tv.click()
    title_has = "([text]) => document.getElementById('results-title').textContent.includes(text)"
    page.wait_for_function(title_has, arg=[crop])
    assert page.locator("#crop-label").inner_text().split()[1] == crop

    # an annotation chip narrows the results to its term; a second click shows them all again
    page.wait_for_selector("#annotations .chip")
    chip = page.locator("#annotations .chip").nth(1)
    term = chip.get_attribute("data-term")
    chip.click()
    page.wait_for_function(
        """([term]) => document.getElementById('results-title').textContent.includes(term)
            && document.querySelectorAll('#results .result').length > 0
            && [...document.querySelectorAll('#results .result')]
                .every(c => c.dataset.category.toLowerCase() === term)""",
        arg=[term],
    )
    assert page.locator(f'#annotations .chip.active[data-term="{term}"]').count() == 1
    screenshot(page, "8-narrowed")
    page.locator(f'#annotations .chip[data-term="{term}"]').click()
    page.wait_for_function(
        """() => !document.getElementById('results-title').textContent.includes('narrowed')
            && new Set([...document.querySelectorAll('#results .result')].map(c => c.dataset.category)).size > 1"""
    )

    # keyword search from the box in the header
    page.fill("#keywords", "pagoda")
    page.press("#keywords", "Enter")
    page.wait_for_function(
        """() => document.getElementById('results-title').textContent.includes('pagoda')
            && [...document.querySelectorAll('#results .result')].length === 6
            && [...document.querySelectorAll('#results .result')].every(c => c.dataset.category === 'pagoda')"""
    )
    screenshot(page, "9-words")


def test_a_closeup_shows_dots_that_open_a_search_of_their_box(server: LiveServer, client, browser_page) -> None:
    page = browser_page
    room = COCO_MINI / "val2017" / "000000000139.jpg"
    added = client.post("/v1/pins", files={"image": ("room.jpg", room.read_bytes())}, data={"pin_id": "living-room"})
    assert added.status_code == 201, added.text
    try:
        page.goto(f"{server.url}/pins/living-room")
        page.wait_for_selector("#closeup-dots .dot")
        screenshot(page, "10-closeup-dots")
        dot = page.locator("#closeup-dots .dot").first
        crop = dot.get_attribute("data-crop")
        dot.click()
        page.wait_for_url("**/?pin=living-room*")
        page.wait_for_function(
            "() => document.getElementById('results-title').textContent.includes('box')"
            " && document.querySelectorAll('#results .result').length > 0"
        )
        assert page.locator("#crop-label").inner_text().split()[1] == crop  # the dot's box, exactly
    finally:
        client.delete("/v1/pins/living-room")


def test_a_closeup_shows_its_related_feed_and_each_opens_its_own(ikea_server: LiveServer, browser_page) -> None:
    page = browser_page
    with httpx.Client(base_url=ikea_server.url, timeout=60) as client:
        query = json.loads((IKEA / "rooms.jsonl").read_text().splitlines()[0])["products"][0]  # on a board
        expected = client.get(f"/v1/pins/{query}/related", params={"k": 3}).json()["results"]
    page.goto(f"{ikea_server.url}/pins/{query}")
    page.wait_for_selector("#related .result")
    cards = page.locator("#related .result")
    assert [cards.nth(i).get_attribute("data-pin-id") for i in range(3)] == [r["pin_id"] for r in expected]
    assert page.locator("#related .result .sources").first.inner_text()  # where each came from
    page.locator("#related .result img").first.wait_for()
    screenshot(page, "11-closeup-related")
    # scrolling down loads the next page of the feed
    page.locator("#related-sentinel").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelectorAll('#related .result').length > 24")
    cards.first.click()
    page.wait_for_url(f"**/pins/{expected[0]['pin_id']}")
    page.wait_for_function(
        "([id]) => document.getElementById('closeup-description').textContent === `Pin ${id}`"
        " && document.querySelectorAll('#related .result').length > 0",
        arg=[expected[0]["pin_id"]],
    )
