"""The Lens page in a real headless browser: upload a photo of a room, see what Lens understands of it (its objects
boxed over it, annotations, colours, a category) and its blended feed; steer the feed with an annotation and a
colour; open the scenes holding one of its objects; and see the server's message for a file it cannot read.
Screenshots of each step land in artifacts/screenshots/lens-*.png."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import COCO_MINI
from tests.serve.conftest import LiveServer, screenshot, start

ROOM = COCO_MINI / "val2017" / "000000000139.jpg"  # a tv, chairs and a person; one of the home's "scenes"


@pytest.fixture(scope="module")
def lens_server(lens_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("served-lens") / "home"
    shutil.copytree(lens_home, home)
    # every source may fire, and dots are kept on the detector's score alone: these tests check the page
    yield from start(
        home, lens_sources=["visual", "text", "object"], dot_min_conformity=0.0, lens_text_min_annotation=0.0
    )


def texts(page: Page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "elements => elements.map(e => e.textContent.trim())")


def test_the_main_page_links_to_lens(lens_server: LiveServer, browser_page: Page) -> None:
    page = browser_page
    page.goto(lens_server.url)
    page.locator("header a[href='/lens']").click()
    page.wait_for_url("**/lens")
    assert page.locator("#lens-view").is_visible() and page.locator("#search-view").is_hidden()
    picker = page.locator("#lens-file")
    assert picker.get_attribute("accept") == "image/*" and picker.get_attribute("capture") is None  # camera or files
    screenshot(page, "lens-0-start")


def test_lens_understands_a_photo_blends_a_feed_steers_it_and_finds_scenes(
    lens_server: LiveServer, browser_page: Page
) -> None:
    page = browser_page
    page.goto(f"{lens_server.url}/lens")
    page.set_input_files("#lens-file", str(ROOM))
    page.wait_for_selector("#lens-feed .result")
    page.wait_for_function("() => document.getElementById('lens-image').complete")

    # what Lens understands: annotations, named colours, the category, and the objects boxed over the photo
    terms = page.eval_on_selector_all("#lens-annotations .chip", "chips => chips.map(c => c.dataset.term)")
    assert terms and all(terms)
    assert all(any(c.isdigit() for c in chip) for chip in texts(page, "#lens-annotations .chip"))  # with its score
    colours = page.eval_on_selector_all(
        "#lens-colours .swatch", "chips => chips.map(c => [c.dataset.term, c.textContent, c.style.background])"
    )
    assert colours and all(name and name in text and "%" in text and background for name, text, background in colours)
    assert page.locator("#lens-category").inner_text().startswith("scenes")
    labels = page.eval_on_selector_all("#lens-boxes .box", "boxes => boxes.map(b => b.dataset.label)")
    assert "tv" in labels
    # a box drawn where its object is: its crop (in the photo's 640x426 pixels) scaled to the photo as shown
    photo = page.locator("#lens-image").bounding_box()
    tv = page.locator('#lens-boxes .box[data-label="tv"]').first
    x, y, w, h = map(int, tv.get_attribute("data-crop").split(","))
    drawn = tv.bounding_box()
    scale = photo["width"] / 640
    assert abs(photo["height"] / 426 - scale) < 0.01
    assert abs(drawn["x"] - (photo["x"] + x * scale)) < 3 and abs(drawn["y"] - (photo["y"] + y * scale)) < 3
    assert abs(drawn["width"] - w * scale) < 4 and abs(drawn["height"] - h * scale) < 4

    # one feed, blended from several sources; each result says where it came from and why
    sources = texts(page, "#lens-feed .result .source")
    assert len(set(sources)) >= 2 and set(sources) <= {"visually similar", "text", "scene with this object"}
    assert all(texts(page, "#lens-feed .result .why"))
    mix = page.locator("#lens-mix").inner_text()
    assert all(name in mix for name in ("visually similar", "text", "scene with this object"))
    screenshot(page, "lens-1-understood")

    # an annotation chip steers the feed to pins carrying its term (the catalog's categories are its terms)
    term = next(t for t in terms if t != "scenes")
    page.locator(f'#lens-annotations .chip[data-term="{term}"]').click()
    page.wait_for_function(
        """([term]) => document.getElementById('lens-term-name').textContent === term
            && document.querySelectorAll('#lens-feed .result').length > 0
            && [...document.querySelectorAll('#lens-feed .result')]
                .every(c => c.dataset.category.toLowerCase() === term)""",
        arg=[term],
    )
    assert page.locator("#lens-term").is_visible()
    assert page.locator(f'#lens-annotations .chip.active[data-term="{term}"]').count() == 1
    screenshot(page, "lens-2-steered-annotation")

    # a colour swatch steers it too (no pin of this catalog carries a colour word: the page says so)
    colour = colours[0][0]
    page.locator(f'#lens-colours .swatch[data-term="{colour}"]').click()
    page.wait_for_function(
        """([term]) => document.getElementById('lens-term-name').textContent === term
            && (document.querySelectorAll('#lens-feed .result').length > 0
                || document.getElementById('lens-status').textContent.includes(term))""",
        arg=[colour],
    )
    assert page.locator(f'#lens-colours .swatch.active[data-term="{colour}"]').count() == 1
    assert page.locator("#lens-annotations .chip.active").count() == 0
    screenshot(page, "lens-3-steered-colour")

    # clearing the term brings the blended feed back
    page.locator("#lens-clear").click()
    page.wait_for_function(
        """() => new Set([...document.querySelectorAll('#lens-feed .result')].map(c => c.dataset.source)).size >= 2"""
    )
    assert page.locator("#lens-term").is_hidden() and page.locator("#lens-understanding .chip.active").count() == 0

    # an object's box shows the scenes that hold objects like it
    tv.click()
    page.wait_for_selector("#lens-scenes .result")
    assert "tv" in page.locator("#lens-scenes-title").inner_text()
    assert page.locator('#lens-boxes .box.active[data-label="tv"]').count() == 1
    assert all(texts(page, "#lens-scenes .result .why"))
    screenshot(page, "lens-4-scenes")
    page.locator("#lens-scenes-close").click()
    assert page.locator("#lens-scenes-panel").is_hidden() and page.locator("#lens-boxes .box.active").count() == 0

    # a result opens its closeup
    first = page.locator("#lens-feed .result").first
    pin_id = first.get_attribute("data-pin-id")
    first.click()
    page.wait_for_url(f"**/pins/{pin_id}")
    page.wait_for_function(
        "([id]) => document.getElementById('closeup-description').textContent === `Pin ${id}`", arg=[pin_id]
    )


def test_lens_shows_the_servers_message_for_a_file_it_cannot_read(lens_server: LiveServer, browser_page: Page) -> None:
    page = browser_page
    page.goto(f"{lens_server.url}/lens")
    page.set_input_files("#lens-file", files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": b"no photo"}])
    page.wait_for_function("() => document.getElementById('lens-problem').textContent.includes('not an image')")
    assert page.locator("#lens-problem").is_visible() and page.locator("#error").is_visible()
    assert page.locator("#lens-file").is_enabled() and page.locator("#lens-understanding").is_hidden()
    screenshot(page, "lens-5-error")
