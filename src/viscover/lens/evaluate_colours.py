"""`viscover eval colours`: is the most salient colour Lens names the one a catalog says the product is?

On fashion-small, each product's `baseColour` (45 colour words) is mapped onto Lens's palette by the table below,
written from the colour words alone before any result was seen; "Multi" and empty values are left out.
Top-1: the most salient colour is the product's; top-2: one of the two most salient is. With and without
removing the background (fashion-small's photos are mostly on white or grey).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from viscover.errors import BadArgumentError, BadImageError
from viscover.evaluate.bootstrap import bootstrap_interval
from viscover.evaluate.report import csv_text, markdown_rows
from viscover.ingest import decode_image
from viscover.lens.colours import PALETTE, salient_colours
from viscover.storage import atomic_path

# fashion-small's baseColour → the palette word a shopper would use for it
BASE_COLOURS = {
    "Black": "black",
    "White": "white",
    "Off White": "white",
    "Cream": "beige",
    "Beige": "beige",
    "Nude": "beige",
    "Skin": "beige",
    "Khaki": "beige",
    "Grey": "grey",
    "Grey Melange": "grey",
    "Charcoal": "grey",
    "Silver": "silver",
    "Steel": "silver",
    "Metallic": "silver",
    "Red": "red",
    "Maroon": "maroon",
    "Burgundy": "maroon",
    "Pink": "pink",
    "Rose": "pink",
    "Peach": "pink",
    "Magenta": "purple",
    "Orange": "orange",
    "Rust": "orange",
    "Copper": "orange",
    "Yellow": "yellow",
    "Gold": "gold",
    "Mustard": "gold",
    "Brown": "brown",
    "Coffee Brown": "brown",
    "Mushroom Brown": "brown",
    "Tan": "brown",
    "Taupe": "brown",
    "Bronze": "brown",
    "Green": "green",
    "Sea Green": "green",
    "Lime Green": "green",
    "Fluorescent Green": "green",
    "Olive": "olive",
    "Blue": "blue",
    "Turquoise Blue": "teal",
    "Teal": "teal",
    "Navy Blue": "navy",
    "Purple": "purple",
    "Lavender": "purple",
    "Mauve": "purple",
}
MODES = {"background removed": True, "every pixel": False}


@dataclass(frozen=True)
class ColourOutcome:
    truth: str  # the palette word of the product's baseColour
    named: dict[str, tuple[str, ...]]  # mode → the colour words, most salient first


@dataclass
class ColourStudy:
    outcomes: list[ColourOutcome]
    skipped: int
    draws: int

    def accuracy(self, mode: str, top: int) -> tuple[float, tuple[float, float]]:
        right = np.array([o.truth in o.named[mode][:top] for o in self.outcomes], dtype=float)
        interval = bootstrap_interval(len(right), lambda rows: float(right[rows].mean()), self.draws)
        return float(right.mean()), interval

    def confusion(self, mode: str) -> np.ndarray:
        """Rows: the true word; columns: the top-1 word (counts), both in palette order."""
        words = list(PALETTE)
        matrix = np.zeros((len(words), len(words)), dtype=np.int64)
        for o in self.outcomes:
            if o.named[mode]:
                matrix[words.index(o.truth), words.index(o.named[mode][0])] += 1
        return matrix


def evaluate_colours(
    folder: Path, *, sample: int = 2000, seed: int = 0, draws: int = 1000, progress: bool = True
) -> ColourStudy:
    """Name the colours of a seeded sample of fashion-small's products, both ways."""
    path = Path(folder) / "styles.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [row for row in csv.DictReader(f) if row.get("baseColour") in BASE_COLOURS]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadArgumentError(f"cannot read {path}: {exc} (a fashion-small folder holds styles.csv)") from None
    rows = [row for row in rows if (Path(folder) / "images" / f"{row['id']}.jpg").is_file()]
    if not rows:
        raise BadArgumentError(f"{folder}: no product with an image and a known baseColour")
    picked = np.random.default_rng(seed).permutation(len(rows))[:sample]
    outcomes, skipped = [], 0
    for index in tqdm(picked.tolist(), desc="colours", disable=not progress):
        row = rows[index]
        try:
            where = Path(folder) / "images" / f"{row['id']}.jpg"
            image = decode_image(where.read_bytes(), str(where)).image
        except BadImageError:
            skipped += 1
            continue
        named = {mode: tuple(c.name for c in salient_colours(image, removal, seed)) for mode, removal in MODES.items()}
        outcomes.append(ColourOutcome(BASE_COLOURS[row["baseColour"]], named))
    if not outcomes:
        raise BadArgumentError(f"{folder}: none of the {skipped} sampled images could be read")
    return ColourStudy(outcomes, skipped, draws)


def write_colours_report(study: ColourStudy, out: Path | None, command: str) -> str:
    """The accuracy table as markdown (returned), and with `out`: colours.md, colours.csv, a confusion plot."""
    table, csv_rows = [], []
    for mode in MODES:
        cells = [mode]
        for top in (1, 2):
            value, (low, high) = study.accuracy(mode, top)
            cells.append(f"{value:.3f} [{low:.3f}, {high:.3f}]")
            csv_rows.append([mode, f"top-{top}", value])
        table.append(cells)
    words = list(PALETTE)
    per_word = []
    matrix = study.confusion("background removed")
    for n, word in enumerate(words):
        if matrix[n].sum():
            per_word.append(
                [word, str(matrix[n].sum()), f"{matrix[n, n] / matrix[n].sum():.2f}", words[matrix[n].argmax()]]
            )
    text = f"""# Lens colours: the most salient colour against the catalog's

`{command}`

{len(study.outcomes)} fashion-small products (a seeded sample; {study.skipped} unreadable images skipped), each
`baseColour` mapped onto Lens's {len(words)}-word palette by a fixed table (`lens/evaluate_colours.py`).
Intervals: bootstrap over products.

{markdown_rows(["pixels", "top-1 [95% CI]", "top-2 [95% CI]"], table)}

Per colour (background removed): how often the top colour is right, and what it is called most.

{markdown_rows(["true colour", "products", "top-1 right", "named most"], per_word)}

![confusion](colours-confusion.png)
"""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "colours.md") as tmp:
            tmp.write_text(text)
        with atomic_path(out / "colours.csv") as tmp:
            tmp.write_text(csv_text(["pixels", "measure", "value"], csv_rows))
        plot_confusion(matrix, out / "colours-confusion.png")
    return text


def plot_confusion(matrix: np.ndarray, path: Path) -> None:
    """Rows normalised: for each true colour, the share of products given each top colour."""
    words = list(PALETTE)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(words)), words, rotation=60, ha="right")
    ax.set_yticks(range(len(words)), words)
    ax.set_xlabel("most salient colour (background removed)")
    ax.set_ylabel("catalog's colour")
    for (row, column), value in np.ndenumerate(shares):
        if value >= 0.05:
            ax.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
