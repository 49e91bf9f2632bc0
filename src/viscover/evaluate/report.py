"""Writing a study where people look: a table in the shape of the paper's Table 1 (terminal, Markdown,
CSV), a bar chart of P@K per row, and a 2-D map of raw versus binary features (Figures 5 and 6)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from viscover.evaluate.study import NOISE_LABEL, StudyResult


def table_rows(study: StudyResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows: Model, Layer, Type, Dist., P@K…, mAP@K, bytes/item (and noise@K if measured)."""
    k_max = study.ks[-1]
    header = ["Model", "Layer", "Type", "Dist.", *[f"P@{k}" for k in study.ks], f"mAP@{k_max}", "bytes/item"]
    if study.noise:
        header.append(f"noise in top {k_max}")
    rows = []
    for result in study.rows:
        binarization, metric = result.row.binarization, result.row.metric
        kind = "raw" if not binarization.binary else f"binary {binarization.method} {result.bits}-bit"
        line = [result.row.backbone, result.row.layer, kind, "H." if metric == "hamming" else metric.upper()]
        line += [f"{result.scores.precision[k]:.3f}" for k in study.ks]
        line += [f"{result.scores.mean_average_precision[k_max]:.3f}", str(result.bytes_per_item)]
        if study.noise:
            line.append(f"{result.noise_per_query:.2f}")
        rows.append(line)
    return header, rows


def format_table(study: StudyResult) -> str:
    return text_table(*table_rows(study))


def markdown_table(study: StudyResult) -> str:
    return markdown_rows(*table_rows(study))


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(study: StudyResult, out: Path, command: str, title: str) -> list[Path]:
    """Markdown (with the command that made it), CSV and the P@K bar chart under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.csv").write_text(csv_text(*table_rows(study)))
    noise = f", {study.noise} white-noise distractors added for the last column" if study.noise else ""
    (out / "retrieval.md").write_text(
        f"# {title}\n\n```bash\n{command}\n```\n\n{study.queries} seeded queries (seed {study.seed}) over "
        f"{study.items} indexed items; the query itself is never a result; a result is relevant when it shares "
        f"the query's label{noise}.\n\n{markdown_table(study)}\n\n![P@K per row](retrieval.png)\n"
    )
    plot_precision(study, out / "retrieval.png")
    return [out / "retrieval.md", out / "retrieval.csv", out / "retrieval.png"]


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    return buffer.getvalue()


def plot_precision(study: StudyResult, path: Path) -> None:
    """Grouped bars: one group per row of the table, one bar per K."""
    _, rows = table_rows(study)
    names = [f"{r[0]}\n{r[1]}\n{r[2]}, {r[3]}" for r in rows]
    x = np.arange(len(names))
    width = 0.8 / len(study.ks)
    fig, ax = plt.subplots(figsize=(max(6, 1.9 * len(names)), 4.8))
    for i, k in enumerate(study.ks):
        values = [result.scores.precision[k] for result in study.rows]
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=f"P@{k}")
    ax.set_xticks(x, names, fontsize=7)
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper center", ncol=len(study.ks))
    ax.set_title(f"Precision@K, {study.queries} queries")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_feature_map(
    raw: np.ndarray, codes: np.ndarray, labels: Sequence[str], path: Path, title: str, seed: int = 0
) -> None:
    """t-SNE of raw features (after PCA to 50-d) next to t-SNE of binary codes (Hamming), by label;
    noise images (label '__noise__') are drawn as black dots, as in the paper's Figure 5."""
    labels = np.asarray(labels)
    bits = np.unpackbits(codes, axis=1, bitorder="little").astype(bool)
    perplexity = min(30.0, (len(raw) - 1) / 3)  # t-SNE needs perplexity < number of points
    raw_2d = TSNE(init="pca", perplexity=perplexity, random_state=seed).fit_transform(
        PCA(min(50, *raw.shape), random_state=seed).fit_transform(raw)
    )
    bits_2d = TSNE(metric="hamming", init="random", perplexity=perplexity, random_state=seed).fit_transform(bits)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    classes = [c for c in dict.fromkeys(labels.tolist()) if c != NOISE_LABEL]
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, points, name in ((axes[0], raw_2d, "raw"), (axes[1], bits_2d, "binary")):
        for i, label in enumerate(classes):
            mask = labels == label
            ax.scatter(*points[mask].T, s=8, color=colours(i % colours.N), label=label)
        noise = labels == NOISE_LABEL
        if noise.any():
            ax.scatter(*points[noise].T, s=8, color="black", label="white noise")
        ax.set_title(f"{title}: {name}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
