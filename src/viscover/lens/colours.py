"""Salient colours of a photo, named in plain words (Lens's query understanding, section 8 of the paper).

Pixels go to CIELAB (scikit-image), the background is removed when the image's border is mostly one colour
(product photos on white), scikit-learn's k-means clusters the rest, each cluster's share of the pixels is
its salience, and each is named by the nearest colour of a fixed palette under CIEDE2000. The palette is CSS's
named colours (sRGB, so standard Lab values), chosen before any evaluation and never fitted to one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from viscover.errors import BadImageError

# CSS named colours (sRGB): plain colour words a shopper would use
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "silver": (192, 192, 192),
    "red": (255, 0, 0),
    "maroon": (128, 0, 0),
    "pink": (255, 192, 203),
    "orange": (255, 165, 0),
    "yellow": (255, 255, 0),
    "gold": (255, 215, 0),
    "beige": (245, 245, 220),
    "brown": (139, 69, 19),
    "green": (0, 128, 0),
    "olive": (128, 128, 0),
    "blue": (0, 0, 255),
    "navy": (0, 0, 128),
    "teal": (0, 128, 128),
    "purple": (128, 0, 128),
}
SIDE = 96  # pixels a side the image is reduced to: colours need no detail
CLUSTERS = 5
BORDER = 0.05  # share of each side that is the border the background colour is read from
BACKGROUND_DELTA = 12.0  # CIEDE2000 within which a pixel is the background's colour
UNIFORM_BORDER = 0.85  # share of the border that must be one colour for it to count as a background
MIN_SHARE = 0.05  # colours of fewer pixels are left out (edges blended by resizing, specks)


@dataclass(frozen=True)
class Colour:
    """One salient colour of a photo."""

    name: str  # the palette's word
    share: float  # of the (foreground) pixels: the colour's salience
    rgb: str  # the cluster's own colour, "#rrggbb"


def _lab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(rgb.reshape(-1, 1, 3).astype(np.float64) / 255.0).reshape(-1, 3)


def _delta(lab: np.ndarray, reference: np.ndarray) -> np.ndarray:
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(lab, np.broadcast_to(reference, lab.shape))


@functools.cache
def _palette_lab() -> np.ndarray:
    return _lab(np.array(list(PALETTE.values())))


def name_of(lab: np.ndarray) -> str:
    """The palette word nearest a Lab colour by CIEDE2000."""
    return list(PALETTE)[int(np.argmin(_delta(_palette_lab(), lab)))]


def foreground(image: Image.Image) -> tuple[np.ndarray, np.ndarray, bool]:
    """(Lab pixels, sRGB pixels) of the image without its background, and whether it has one (a plain
    backdrop). The background is the region of the border's colour that touches the border, when most of the
    border has one colour: a white shirt on white stays, because its outline parts it from the backdrop. Every
    pixel is kept otherwise, and when the background would take them all."""
    from scipy import ndimage

    rgb = _pixels(image)
    lab = _lab(rgb).reshape(rgb.shape)
    border, near, plain = _border_colour(lab)
    regions, _ = ndimage.label(near)
    touching = np.setdiff1d(np.unique(regions[border & near]), [0])
    backdrop = np.isin(regions, touching)
    keep = ~backdrop if plain and (~backdrop).any() else np.ones_like(near)
    return lab[keep], rgb[keep], plain


def plain_background(image: Image.Image) -> bool:
    """Whether most of the image's border is one colour: a product shot on a backdrop, itself one object."""
    rgb = _pixels(image)
    return _border_colour(_lab(rgb).reshape(rgb.shape))[2]


def _border_colour(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(the border's mask, the pixels near the border's median colour, whether the border is mostly that
    colour) of an image's Lab pixels."""
    height, width = lab.shape[:2]
    edge = max(1, round(BORDER * min(height, width)))
    border = np.ones((height, width), dtype=bool)
    border[edge:-edge, edge:-edge] = False
    background = np.median(lab[border], axis=0)
    near = _delta(lab.reshape(-1, 3), background).reshape(height, width) < BACKGROUND_DELTA
    return border, near, bool(near[border].mean() >= UNIFORM_BORDER)


def _pixels(image: Image.Image) -> np.ndarray:
    """The image as sRGB pixels at most SIDE a side; transparent parts over white, as a page shows them."""
    if image.width < 1 or image.height < 1:
        raise BadImageError(f"an image of {image.width}x{image.height} pixels has no colours")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    image = image.convert("RGB")
    image.thumbnail((SIDE, SIDE))
    return np.asarray(image, dtype=np.uint8)


def salient_colours(image: Image.Image, remove_background: bool = True, seed: int = 0) -> list[Colour]:
    """The image's colours with at least MIN_SHARE of its (foreground) pixels, most salient first; clusters
    given the same word are merged."""
    if remove_background:
        return colours_and_backdrop(image, seed)[0]
    rgb = _pixels(image).reshape(-1, 3)
    return _named_clusters(_lab(rgb), rgb, seed)


def colours_and_backdrop(image: Image.Image, seed: int = 0) -> tuple[list[Colour], bool]:
    """`salient_colours` with the background removed, and whether the photo has a plain backdrop (a product
    shot), from one pass over its pixels."""
    lab, rgb, plain = foreground(image)
    return _named_clusters(lab, rgb, seed), plain


def _named_clusters(lab: np.ndarray, rgb: np.ndarray, seed: int) -> list[Colour]:
    from sklearn.cluster import KMeans

    clusters = min(CLUSTERS, len(np.unique(rgb, axis=0)))
    kmeans = KMeans(clusters, n_init=3, random_state=seed).fit(lab)
    named: dict[str, list[int]] = {}
    for cluster, centre in enumerate(kmeans.cluster_centers_):
        named.setdefault(name_of(centre), []).append(cluster)
    colours = []
    for name, clusters_named in named.items():
        members = np.isin(kmeans.labels_, clusters_named)
        mean = rgb[members].mean(axis=0)
        colours.append(Colour(name, float(members.mean()), "#" + "".join(f"{round(v):02x}" for v in mean)))
    return sorted((c for c in colours if c.share >= MIN_SHARE), key=lambda colour: (-colour.share, colour.name))
