"""The paper's Table 3: detection precision and recall per category group at an IoU threshold, a PR curve,
and median latency per image on this machine.

Matching is greedy by descending score, once per (detector, IoU): each ground-truth box is matched at
most once, to the best-overlapping detection of its label; a detection overlapping only a COCO crowd
region is neither a hit nor a miss. Since greedy matching never lets a lower score change a higher
score's match, precision and recall at any score threshold come from the same matching.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from tqdm import tqdm

from viscover.detect import AnnotatedImage, Detection, DetectionDataset, Detector, box_iou
from viscover.errors import BadArgumentError, UnknownNameError
from viscover.evaluate.report import csv_text, markdown_rows, text_table

# The paper's three groups, in COCO's names; users pass their own with --groups.
DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "Fashion": ("handbag", "backpack", "tie", "suitcase", "umbrella"),
    "Home decor": ("chair", "couch", "bed", "dining table", "potted plant", "vase", "clock", "tv"),
    "Vehicles": ("car", "bus", "truck", "motorcycle", "bicycle", "train", "boat", "airplane"),
}
HIT, MISS, IGNORED = 1, 0, -1


@dataclass(frozen=True)
class DetectorRun:
    """Every detection of one detector over a dataset, and its time per image."""

    detector: str
    detections: list[list[Detection]]
    seconds: list[float]

    @property
    def median_latency_ms(self) -> float:
        return 1000 * float(np.median(self.seconds)) if self.seconds else 0.0


@dataclass(frozen=True)
class Matching:
    """Detections as (score, label, HIT/MISS/IGNORED) and the number of ground-truth boxes per label."""

    scores: np.ndarray
    labels: np.ndarray
    outcome: np.ndarray
    truths: Counter

    def precision_recall(self, labels: Sequence[str] | None, min_score: float) -> tuple[float, float, int, int]:
        """(precision, recall, detections, ground truths) over `labels` (None: all) at a score threshold."""
        chosen = (self.scores >= min_score) & (self.outcome != IGNORED)
        if labels is not None:
            chosen &= np.isin(self.labels, list(labels))
        truths = sum(self.truths.values()) if labels is None else sum(self.truths[label] for label in labels)
        hits = int((self.outcome[chosen] == HIT).sum())
        found = int(chosen.sum())
        return (hits / found if found else 0.0), (hits / truths if truths else 0.0), found, truths

    def curve(self, labels: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall at every score threshold, from the highest score down."""
        keep = self.outcome != IGNORED
        if labels is not None:
            keep &= np.isin(self.labels, list(labels))
        order = np.argsort(-self.scores[keep], kind="stable")
        hits = np.cumsum(self.outcome[keep][order] == HIT)
        truths = sum(self.truths.values()) if labels is None else sum(self.truths[label] for label in labels)
        return hits / np.arange(1, len(hits) + 1), hits / max(1, truths)


def match_image(detections: Sequence[Detection], truth: AnnotatedImage, iou: float) -> np.ndarray:
    """HIT/MISS/IGNORED per detection (in the given order) against one image's ground truth."""
    outcome = np.full(len(detections), MISS)
    if not detections or not len(truth.labels):
        return outcome
    overlaps = box_iou(np.array([tuple(d.box) for d in detections]), truth.boxes)
    truth_labels = np.array(truth.labels)
    taken = np.zeros(len(truth_labels), dtype=bool)
    for i in np.argsort([-d.score for d in detections], kind="stable"):
        same = truth_labels == detections[i].label
        candidates = np.where(same & ~taken & ~truth.crowd, overlaps[i], -1.0)
        best = int(np.argmax(candidates))
        if candidates[best] >= iou:
            outcome[i], taken[best] = HIT, True
        elif (overlaps[i][same & truth.crowd] >= iou).any():
            outcome[i] = IGNORED
    return outcome


def match_run(run: DetectorRun, dataset: DetectionDataset, iou: float) -> Matching:
    outcomes, scores, labels = [], [], []
    for detections, truth in zip(run.detections, dataset.images, strict=True):
        outcomes.append(match_image(detections, truth, iou))
        scores += [d.score for d in detections]
        labels += [d.label for d in detections]
    truths = Counter(label for t in dataset.images for label, crowd in zip(t.labels, t.crowd, strict=True) if not crowd)
    outcome = np.concatenate(outcomes) if outcomes else np.zeros(0, dtype=int)
    return Matching(np.array(scores, dtype=float), np.array(labels, dtype=object), outcome, truths)


def run_detector(
    detector: Detector, dataset: DetectionDataset, min_score: float = 0.05, progress: bool = True
) -> DetectorRun:
    """Detect on every image (decoding outside the timed part) after one untimed warm-up call."""
    detections, seconds = [], []
    for n, item in enumerate(tqdm(dataset.images, desc=f"detect {detector.name}", disable=not progress)):
        with Image.open(item.path) as im:
            image = im.convert("RGB")
        if n == 0:
            detector.detect(image, min_score)
        start = time.perf_counter()
        detections.append(detector.detect(image, min_score))
        seconds.append(time.perf_counter() - start)
    return DetectorRun(detector.name, detections, seconds)


def check_groups(groups: Mapping[str, Sequence[str]], classes: Sequence[str]) -> None:
    unknown = sorted({label for labels in groups.values() for label in labels} - set(classes))
    if unknown:
        raise UnknownNameError(f"group labels not in the dataset's classes: {', '.join(unknown)}")


def parse_groups(text: str) -> dict[str, tuple[str, ...]]:
    """'Fashion=handbag,tie;Vehicles=car,bus' → {'Fashion': ('handbag', 'tie'), …}."""
    groups = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, labels = part.partition("=")
        if not sep or not name.strip() or not labels.strip():
            raise BadArgumentError(f"a group is NAME=label,label,…; got {part!r}")
        groups[name.strip()] = tuple(label.strip() for label in labels.split(",") if label.strip())
    return groups


@dataclass(frozen=True)
class DetectionStudy:
    dataset: DetectionDataset
    runs: list[DetectorRun]
    ious: list[float]
    min_score: float
    groups: dict[str, tuple[str, ...]]

    def matchings(self) -> dict[tuple[str, float], Matching]:
        return {(run.detector, iou): match_run(run, self.dataset, iou) for run in self.runs for iou in self.ious}

    def table(self, iou: float, matchings: Mapping[tuple[str, float], Matching]) -> tuple[list[str], list[list[str]]]:
        """Table 3's shape: a row per group plus Overall and Latency, precision and recall per detector.

        Precision reads "n/a" where a detector found nothing in the group (it is undefined, not zero)."""
        header = ["", "boxes", *[f"{run.detector} {m}" for run in self.runs for m in ("precision", "recall")]]
        rows = []
        for name, labels in [*self.groups.items(), ("Overall", None)]:
            cells, truths = [], 0
            for run in self.runs:
                p, r, found, truths = matchings[(run.detector, iou)].precision_recall(labels, self.min_score)
                cells += [f"{p:.3f}" if found else "n/a", f"{r:.3f}"]
            rows.append([name, str(truths), *cells])
        rows.append(["Latency", "", *[c for run in self.runs for c in (f"{run.median_latency_ms:.0f} ms", "")]])
        return header, rows


def write_detection_report(study: DetectionStudy, out: Path | None, command: str) -> str:
    """The tables (terminal text returned; Markdown, CSV and the PR plot under `out` when given)."""
    matchings = study.matchings()
    texts, markdown = [], []
    for iou in study.ious:
        header, rows = study.table(iou, matchings)
        texts.append(f"IoU {iou}, score >= {study.min_score}\n{text_table(header, rows)}")
        markdown.append(f"## IoU {iou}, score ≥ {study.min_score}\n\n{markdown_rows(header, rows)}")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"detection-iou{iou}.csv").write_text(csv_text(header, rows))
    if out is not None:
        truths = sum(len(t.labels) for t in study.dataset.images)
        crowds = sum(int(np.sum(t.crowd)) for t in study.dataset.images)
        groups = "; ".join(f"**{name}**: {', '.join(labels)}" for name, labels in study.groups.items())
        (out / "detection.md").write_text(
            f"# Object detection on {study.dataset.name}\n\n```bash\n{command}\n```\n\n"
            f"{len(study.dataset)} images, {truths} ground-truth boxes ({crowds} of them crowd regions: a detection "
            f"on one is ignored, and the boxes column leaves them out). A detection is a hit when it has the "
            f"box's label and IoU at or above the threshold (each box matched once, best score first). "
            f"Groups: {groups}; Overall is every class. Latency is the median per image on this machine "
            f"(decoded image in, boxes out, one image at a time).\n\n"
            + "\n\n".join(markdown)
            + "\n\n![precision-recall](detection-pr.png)\n"
        )
        plot_precision_recall(study, matchings, out / "detection-pr.png")
    return "\n\n".join(texts)


def plot_precision_recall(study: DetectionStudy, matchings: Mapping[tuple[str, float], Matching], path: Path) -> None:
    """Overall precision against recall as the score threshold falls, one panel per IoU; dots mark the
    table's fixed threshold."""
    fig, axes = plt.subplots(1, len(study.ious), figsize=(5.5 * len(study.ious), 4.5), squeeze=False)
    for ax, iou in zip(axes[0], study.ious, strict=True):
        for run in study.runs:
            matching = matchings[(run.detector, iou)]
            precision, recall = matching.curve()
            (line,) = ax.plot(recall, precision, label=run.detector)
            p, r, _, _ = matching.precision_recall(None, study.min_score)
            ax.plot([r], [p], "o", color=line.get_color())
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"IoU {iou}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{study.dataset.name}: overall precision-recall (dot: score {study.min_score})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
