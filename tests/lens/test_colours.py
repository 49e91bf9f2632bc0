"""Lens's salient colours on generated images of known colours, and the colour evaluation on real products."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.conftest import SHARED
from viscover.errors import BadArgumentError, BadImageError
from viscover.lens import PALETTE, salient_colours
from viscover.lens.evaluate_colours import BASE_COLOURS, evaluate_colours, write_colours_report

FASHION = SHARED / "datasets" / "fashion-small"


def on_white(fill: tuple[int, int, int], size: tuple[int, int] = (240, 320)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).ellipse((40, 50, size[0] - 40, size[1] - 60), fill=fill)
    return image


@pytest.mark.parametrize(
    ("fill", "name"),
    [
        ((200, 20, 30), "red"),
        ((20, 30, 110), "navy"),
        ((30, 140, 40), "green"),
        ((255, 245, 20), "yellow"),
        ((240, 190, 0), "gold"),
        ((120, 60, 20), "brown"),
        ((20, 20, 20), "black"),
        ((140, 140, 140), "grey"),
    ],
)
def test_a_product_on_white_is_named_by_its_own_colour(fill: tuple[int, int, int], name: str) -> None:
    colours = salient_colours(on_white(fill))
    assert colours[0].name == name and colours[0].share > 0.9
    assert salient_colours(on_white(fill), remove_background=False)[0].name == "white"  # the background wins


def test_two_colours_by_their_share_and_a_full_bleed_photo_keeps_its_main_colour() -> None:
    image = Image.new("RGB", (300, 200), (20, 40, 200))
    ImageDraw.Draw(image).rectangle((210, 0, 300, 200), fill=(255, 245, 20))
    colours = salient_colours(image)  # the border is not one colour: nothing is background
    assert [c.name for c in colours] == ["blue", "yellow"]
    assert colours[0].share == pytest.approx(0.7, abs=0.03) and colours[1].share == pytest.approx(0.3, abs=0.03)
    assert colours[0].rgb.startswith("#") and len(colours[0].rgb) == 7
    white = salient_colours(Image.new("RGB", (64, 64), "white"))  # all background: every pixel is kept
    assert [c.name for c in white] == ["white"] and white[0].share == 1.0


def test_a_white_product_on_white_keeps_its_colour_and_transparency_is_white() -> None:
    shirt = Image.new("RGB", (240, 320), "white")
    ImageDraw.Draw(shirt).rectangle((50, 60, 190, 280), fill=(250, 250, 250), outline=(60, 60, 60), width=3)
    assert salient_colours(shirt)[0].name == "white"  # only the backdrop touching the border is removed
    cutout = Image.new("RGBA", (200, 200), (0, 0, 255, 0))  # blue under full transparency: white on a page
    ImageDraw.Draw(cutout).ellipse((40, 40, 160, 160), fill=(200, 20, 30, 255))
    assert [c.name for c in salient_colours(cutout)] == ["red"]
    with pytest.raises(BadImageError, match="no colours"):
        salient_colours(Image.new("RGB", (0, 0)))


def test_the_base_colour_table_covers_the_catalog_and_maps_onto_the_palette() -> None:
    with (FASHION / "styles.csv").open(newline="", encoding="utf-8") as f:
        used = {row["baseColour"] for row in csv.DictReader(f)} - {"", "Multi"}
    assert used == set(BASE_COLOURS) and set(BASE_COLOURS.values()) <= set(PALETTE)


def test_eval_colours_on_real_products(tmp_path: Path) -> None:
    study = evaluate_colours(FASHION, sample=60, draws=50, progress=False)
    assert len(study.outcomes) + study.skipped == 60
    # on photos on white, removing the background names the product, not the backdrop, far more often
    removed, every = (study.accuracy(mode, 1)[0] for mode in ("background removed", "every pixel"))
    assert removed > every + 0.1 and removed > 0.2
    with pytest.raises(BadArgumentError, match=r"styles\.csv"):
        evaluate_colours(tmp_path, sample=5, progress=False)
    text = write_colours_report(study, tmp_path, "viscover eval colours")
    assert "top-1" in text and {p.name for p in tmp_path.iterdir()} == {
        "colours.md",
        "colours.csv",
        "colours-confusion.png",
    }
