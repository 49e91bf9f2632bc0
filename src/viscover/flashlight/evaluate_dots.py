"""`viscover eval dots`: the paper's Table 5 (which object dots to show) as a sweep that is not circular.

The catalog pools crops of the ground-truth boxes and the whole images of every scene; each pin's category is
what the detector predicts on it, its stored objects what the detector finds in it, and its text its scene's
captions where there are any, so the signals see only what a production catalog would have. The ground truth
only judges: a shown dot is *useful* when it matches a ground-truth box not matched yet (IoU >= 0.5, also 0.7)
and at least half of its top-10 results are crops or images that truly contain that box's class. A scene's
own image and crops are never its results. Thresholds are tuned on one data set's scenes (F-beta of useful
dots) and reported on another's.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve
from tqdm import tqdm

from viscover.config import Settings
from viscover.detect import AnnotatedImage, BadDatasetError, Detector, box_iou, load_dataset
from viscover.errors import BadArgumentError
from viscover.evaluate.bootstrap import bootstrap_interval
from viscover.evaluate.report import csv_text, markdown_rows
from viscover.evaluate.workhome import evaluation_settings, ingest_rows
from viscover.search import DotThresholds, Engine, Insight
from viscover.search.annotations import conformity
from viscover.search.insight import SIGNALS as DOT_SIGNALS
from viscover.search.objects import index_objects
from viscover.storage import atomic_path

# "conformity" as the settings measure it (by default the share of the top results carrying the dot's label),
# and "largest share" as the paper measures it (the largest share of them with one category), for comparison
FILTER = DOT_SIGNALS  # the dot filter's signals, in DotThresholds' order
SIGNALS = (*FILTER, "largest share")
ROWS: dict[str, tuple[str, ...]] = {  # the table's rows: the signals each one's thresholds are tuned on
    "no filter": (),
    "detector score alone": (),  # its threshold shows as many dots as "all three" does
    "visual only": ("detector", "similarity"),
    "annotation only": ("detector", "annotation"),
    "visual + annotation": ("detector", "similarity", "annotation"),
    "all three, the paper's conformity": ("detector", "similarity", "annotation", "largest share"),
    "all three": FILTER,
}
DETECTOR_GRID = (0.3, 0.4, 0.5, 0.6, 0.7)
SIGNAL_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
IOUS = (0.5, 0.7)
TOP = 10  # results judged per dot
USEFUL_SHARE = 0.5  # of them that must truly contain the object's class
MIN_CROP_SIDE = 32  # smaller ground-truth boxes make no catalog crop
USEFUL, WRONG, IGNORED, HIDDEN = 1, 0, -1, -2
BAR = 1.2  # all three filters against the detector alone, at the same dots per image
CEILING_DOTS = (1.0, 0.5, 0.0)  # dots per image at least, for the best ratio the tuning scenes allow
CEILING_MIN_DOTS = 10  # fewer shown dots make no ratio worth reading
CONFORMITY_TEXT = {  # Settings.dot_conformity's choices, as the report says them
    "label": "the share of the top results in which the detector saw the dot's own label",
    "largest": "the largest share of the top results with one category, among those with a category",
}


@dataclass(frozen=True)
class Scene:
    """A photo and its ground truth; the unit that leaks, so its own pins are never its results."""

    name: str
    truth: AnnotatedImage

    def objects(self) -> list[str]:
        """The labels of its ground-truth objects, crowd regions left out."""
        truth = self.truth
        return [label for label, crowd in zip(truth.labels, truth.crowd, strict=True) if not crowd]


@dataclass(frozen=True)
class CatalogPin:
    key: int
    scene: str
    classes: frozenset[str]  # the classes truly in it: a crop's box's, or all of a whole image's


def load_scenes(path: Path, split: str, limit: int | None = None) -> list[Scene]:
    """The first `limit` scenes of a detection data set's split."""
    images = load_dataset(path, split).images[:limit]
    return [Scene(image.path.name, image) for image in images]


def load_captions(folders: Sequence[Path]) -> dict[str, str]:
    """COCO captions (captions_*.json under the folders), joined per image file name."""
    texts: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("**/captions_*.json")):
            data = json.loads(path.read_text())
            names = {image["id"]: image["file_name"] for image in data["images"]}
            for caption in data["annotations"]:
                texts.setdefault(names[caption["image_id"]], []).append(caption["caption"].strip())
    return {name: " ".join(parts) for name, parts in texts.items()}


def build_catalog(
    scenes: Sequence[Scene], captions: Mapping[str, str], engine: Engine, detector: Detector, progress: bool
) -> dict[str, CatalogPin]:
    """Ingest and index every scene's whole image and ground-truth crops into `engine`'s home, each pin's
    category the detector's best label on it, and store every pin's objects; resumes where an interrupted run
    stopped."""
    home = engine.settings.home
    (home / "crops").mkdir(parents=True, exist_ok=True)
    labels_path = home / "detector-labels.json"
    labels: dict[str, str | None] = json.loads(labels_path.read_text()) if labels_path.exists() else {}
    truth: dict[str, tuple[str, frozenset[str]]] = {}
    rows = []
    for scene in tqdm(scenes, desc="catalog: crops and detector labels", disable=not progress):
        stem = Path(scene.name).stem
        with Image.open(scene.truth.path) as opened:
            image = opened.convert("RGB")
        pins = [(stem, scene.truth.path, image, frozenset(scene.truth.labels))]
        objects = zip(scene.truth.boxes, scene.truth.labels, scene.truth.crowd, strict=True)
        for n, (box, label, crowd) in enumerate(objects):
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            if crowd or min(x1 - x0, y1 - y0) < MIN_CROP_SIDE:
                continue
            crop, path = image.crop((x0, y0, x1, y1)), home / "crops" / f"{stem}-{n}.jpg"
            if not path.exists():
                with atomic_path(path) as tmp:
                    crop.save(tmp, "JPEG", quality=95)
            pins.append((f"{stem}-{n}", path, crop, frozenset([label])))
        for pin_id, path, picture, classes in pins:
            if pin_id not in labels:
                found = detector.detect(picture, engine.settings.min_score)
                labels[pin_id] = found[0].label if found else None
            truth[pin_id] = (scene.name, classes)
            rows.append(
                {
                    "id": pin_id,
                    "image": str(path),
                    "category": labels[pin_id],
                    "description": captions.get(scene.name),
                }
            )
    with atomic_path(labels_path) as tmp:
        tmp.write_text(json.dumps(labels))
    stored = ingest_rows(engine, rows, progress)
    index_objects(engine, progress)
    return {pin_id: CatalogPin(stored[pin_id], *truth[pin_id]) for pin_id in truth if pin_id in stored}


@dataclass
class Candidates:
    """Every detection above the floor on one split's scenes: its four signals and what judging it needs."""

    scenes: list[Scene]
    scene: np.ndarray  # (N,) index into scenes
    signals: np.ndarray  # (N, len(SIGNALS)) in SIGNALS order
    overlaps: dict[float, list[list[int]]]  # IoU → per candidate, ground-truth boxes overlapping that much, best first
    support: list[dict[str, float]]  # per candidate: class → share of its top-10 results truly containing it
    judged: frozenset[str]  # classes with enough instances to judge
    order: np.ndarray = field(init=False)  # best detector score first: the greedy matching's order
    objects: np.ndarray = field(init=False)  # per scene, ground-truth objects of judged classes

    def __post_init__(self) -> None:
        self.order = np.argsort(-self.signals[:, 0], kind="stable")
        self.objects = np.array([sum(label in self.judged for label in s.objects()) for s in self.scenes], dtype=int)

    def __len__(self) -> int:
        return len(self.scene)

    def shown(self, thresholds: Mapping[str, float]) -> np.ndarray:
        """Which candidates pass every given threshold."""
        mask = np.ones(len(self), dtype=bool)
        for signal, least in thresholds.items():
            mask &= self.signals[:, SIGNALS.index(signal)] >= least
        return mask

    def best_scored(self, count: int) -> np.ndarray:
        """The `count` candidates with the highest detector scores (the detector alone at a given dot count)."""
        mask = np.zeros(len(self), dtype=bool)
        mask[self.order[:count]] = True
        return mask

    def outcomes(self, shown: np.ndarray, iou: float) -> np.ndarray:
        """Each candidate's judgement when the `shown` ones are shown: USEFUL, WRONG, HIDDEN, or IGNORED (on a
        crowd region or on a class too rare to judge). Greedy, best score first, each box matched once."""
        result = np.full(len(self), HIDDEN)
        matched: list[set[int]] = [set() for _ in self.scenes]
        for i in self.order:
            if not shown[i]:
                continue
            s = self.scene[i]
            truth = self.scenes[s].truth
            box = next((g for g in self.overlaps[iou][i] if g not in matched[s]), None)
            if box is None:
                result[i] = WRONG
            elif truth.crowd[box]:
                result[i] = IGNORED
            else:
                matched[s].add(box)
                label = truth.labels[box]
                useful = self.support[i].get(label, 0.0) >= USEFUL_SHARE
                result[i] = IGNORED if label not in self.judged else USEFUL if useful else WRONG
        return result

    def each_alone(self, iou: float) -> np.ndarray:
        """Each candidate judged on its own, as if no other were shown (for the signals' ROC AUC: under greedy
        matching a lower-scored duplicate is wrong by construction, which only the detector's score sees)."""
        result = np.full(len(self), WRONG)
        for i, boxes in enumerate(self.overlaps[iou]):
            if boxes:
                truth = self.scenes[self.scene[i]].truth
                label = truth.labels[boxes[0]]
                if truth.crowd[boxes[0]] or label not in self.judged:
                    result[i] = IGNORED
                elif self.support[i].get(label, 0.0) >= USEFUL_SHARE:
                    result[i] = USEFUL
        return result

    def tally(self, shown: np.ndarray, iou: float) -> Tally:
        outcome = self.outcomes(shown, iou)
        count = len(self.scenes)
        return Tally(
            np.bincount(self.scene[outcome == USEFUL], minlength=count),
            np.bincount(self.scene[(outcome == USEFUL) | (outcome == WRONG)], minlength=count),
            np.bincount(self.scene[shown], minlength=count),
            self.objects,
        )


@dataclass(frozen=True)
class Tally:
    """Per scene: useful dots, judged dots, dots shown, ground-truth objects of judged classes."""

    useful: np.ndarray
    judged: np.ndarray
    dots: np.ndarray
    objects: np.ndarray

    def rates(self, scenes: np.ndarray | None = None) -> tuple[float, float, float]:
        """Precision of shown dots, recall of objects and dots per image over `scenes` (default: all)."""
        pick = slice(None) if scenes is None else scenes
        useful, judged = self.useful[pick].sum(), self.judged[pick].sum()
        objects, dots = self.objects[pick].sum(), self.dots[pick].sum()
        scene_count = len(self.dots) if scenes is None else len(scenes)
        return (
            useful / judged if judged else float("nan"),
            useful / objects if objects else float("nan"),
            dots / scene_count if scene_count else float("nan"),
        )


def collect(
    scenes: Sequence[Scene],
    insight: Insight,
    catalog: Mapping[str, CatalogPin],
    floor: float,
    judged: frozenset[str],
    progress: bool,
) -> Candidates:
    """Detect on each scene (scores >= floor), search every box in one batch without the scene's own pins,
    and keep each detection's signals, overlaps with the ground truth and its results' true classes."""
    searcher = insight.searcher
    own: dict[str, set[int]] = {}
    for pin in catalog.values():
        own.setdefault(pin.scene, set()).add(pin.key)
    settings = insight.settings
    everything = DotThresholds(0.0, 0.0, 0.0, 0.0, settings.dot_conformity, settings.dot_conformity_depth)
    scene_of, signals, support = [], [], []
    overlaps: dict[float, list[list[int]]] = {iou: [] for iou in IOUS}
    for s, scene in enumerate(tqdm(scenes, desc="dots: detect, search, signals", disable=not progress)):
        with Image.open(scene.truth.path) as opened:
            image = opened.convert("RGB")
        found = searcher.detector().detect(image, floor)
        judged_dots = insight.judge(image, found, own.get(scene.name, set()), everything)
        ious = box_iou(np.array([list(d.box) for d in found]).reshape(-1, 4), scene.truth.boxes)
        for i, (dot, hits) in enumerate(judged_dots):
            scene_of.append(s)
            largest_share = conformity(hits[: everything.depth])
            signals.append([dot.score, dot.similarity, dot.annotation, dot.conformity, largest_share])
            top = hits[:TOP]
            counts = Counter(c for hit in top for c in catalog[hit.pin.pin_id].classes)
            support.append({c: n / TOP for c, n in counts.items()})  # missing results count as not containing it
            for iou in IOUS:
                best = np.argsort(-ious[i], kind="stable")
                overlaps[iou].append([int(g) for g in best if ious[i, g] >= iou])
    return Candidates(
        list(scenes),
        np.array(scene_of, dtype=int),
        np.array(signals, dtype=float).reshape(-1, len(SIGNALS)),
        overlaps,
        support,
        judged,
    )


def signal_grid(candidates: Candidates, signal: str, floor: float) -> list[float]:
    """Thresholds tried for one signal: detector scores from the floor up, else quantiles of the signal."""
    if signal == "detector":
        return [floor, *(t for t in DETECTOR_GRID if t > floor)]
    values = candidates.signals[:, SIGNALS.index(signal)]
    return [0.0, *sorted({round(float(q), 4) for q in np.quantile(values, SIGNAL_QUANTILES)} - {0.0})]


def f_beta(precision: float, recall: float, beta: float) -> float:
    if np.isnan(precision) or np.isnan(recall) or precision + recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


def tune(candidates: Candidates, signals: Sequence[str], floor: float, beta: float) -> dict[str, float]:
    """The thresholds on `signals` with the best F-beta of useful dots at IoU 0.5 (ties: the first tried)."""
    best: tuple[float, dict[str, float]] = (-1.0, {})
    for values in product(*(signal_grid(candidates, s, floor) for s in signals)):
        thresholds = dict(zip(signals, values, strict=True))
        precision, recall, _ = candidates.tally(candidates.shown(thresholds), IOUS[0]).rates()
        score = f_beta(precision, recall, beta)
        if score > best[0]:
            best = (score, thresholds)
    return best[1]


@dataclass(frozen=True)
class RowScores:
    precision: float
    precision_ci: tuple[float, float]
    recall: float
    recall_ci: tuple[float, float]
    dots_per_image: float


@dataclass
class DotsStudy:
    """Tuned thresholds per row and their scores on both splits, per IoU, with the signals' ROC AUCs."""

    tune: Candidates
    report: Candidates
    thresholds: dict[str, dict[str, float]]
    catalog_pins: int
    whole_images: int
    floor: float
    beta: float
    conformity: str  # how the settings measure it: a key of CONFORMITY_TEXT
    conformity_depth: int  # over how many top results
    draws: int = 1000
    seed: int = 0

    def masks(self, candidates: Candidates) -> dict[str, np.ndarray]:
        masks = {name: candidates.shown(self.thresholds.get(name, {})) for name in ROWS}
        masks["detector score alone"] = candidates.best_scored(int(masks["all three"].sum()))
        return masks

    def scores(self, candidates: Candidates, iou: float) -> dict[str, RowScores]:
        rows = {}
        for name, mask in self.masks(candidates).items():
            tally = candidates.tally(mask, iou)
            precision, recall, dots = tally.rates()
            rows[name] = RowScores(
                precision,
                self._interval(len(candidates.scenes), lambda idx, t=tally: t.rates(idx)[0]),
                recall,
                self._interval(len(candidates.scenes), lambda idx, t=tally: t.rates(idx)[1]),
                dots,
            )
        return rows

    def gain(self, row: str = "all three", iou: float = IOUS[0]) -> tuple[float, tuple[float, float]]:
        """Precision of a row's filters over the detector alone at the same dot count (report split)."""
        report = self.report
        shown = report.shown(self.thresholds[row])
        ours, theirs = report.tally(shown, iou), report.tally(report.best_scored(int(shown.sum())), iou)

        def ratio(idx: np.ndarray | None = None) -> float:
            with np.errstate(divide="ignore", invalid="ignore"):
                return ours.rates(idx)[0] / theirs.rates(idx)[0]

        return ratio(), self._interval(len(self.report.scenes), ratio)

    def ceilings(
        self, least_dots: Sequence[float] = CEILING_DOTS, min_dots: int = CEILING_MIN_DOTS
    ) -> dict[float, tuple[float, dict[str, float], float] | None]:
        """Per least dots per image: the best precision ratio over the detector alone that any all-three thresholds
        of the grid reach on the tuning scenes (IoU 0.5), its thresholds and dots per image: is the bar in reach?"""
        tuning, sweep, alone = self.tune, [], {}
        for values in product(*(signal_grid(tuning, signal, self.floor) for signal in FILTER)):
            thresholds = dict(zip(FILTER, values, strict=True))
            shown = tuning.shown(thresholds)
            count = int(shown.sum())
            if count < min_dots:
                continue
            if count not in alone:
                alone[count] = tuning.tally(tuning.best_scored(count), IOUS[0]).rates()[0]
            precision, _, dots = tuning.tally(shown, IOUS[0]).rates()
            if alone[count] > 0 and not np.isnan(precision):
                sweep.append((precision / alone[count], thresholds, dots))
        return {
            least: max((row for row in sweep if row[2] >= least), key=lambda row: row[0], default=None)
            for least in least_dots
        }

    def auc(self, candidates: Candidates, intervals: bool = True) -> dict[str, tuple[float, tuple[float, float]]]:
        """Each signal's ROC AUC at telling useful from wrong dots, each judged alone, IoU 0.5 (with a bootstrap
        interval, or NaNs without `intervals`)."""
        outcome = candidates.each_alone(IOUS[0])
        judged = outcome >= WRONG
        per_scene = [np.flatnonzero((candidates.scene == s) & judged) for s in range(len(candidates.scenes))]

        def area(column: int, idx: np.ndarray | None = None) -> float:
            rows = np.concatenate([per_scene[s] for s in (range(len(per_scene)) if idx is None else idx)] or [[]])
            y = outcome[rows.astype(int)] == USEFUL
            return roc_auc_score(y, candidates.signals[rows.astype(int), column]) if 0 < y.sum() < len(y) else np.nan

        def interval(column: int) -> tuple[float, float]:
            if not intervals:
                return float("nan"), float("nan")
            return self._interval(len(per_scene), lambda idx: area(column, idx))

        return {signal: (area(c), interval(c)) for c, signal in enumerate(SIGNALS)}

    def chosen(self) -> DotThresholds:
        """The "all three" row's thresholds with the measure of conformity they were tuned for, as the settings
        and `--apply` take them."""
        tuned = self.thresholds["all three"]
        return DotThresholds(
            *(tuned.get(signal, 0.0) for signal in FILTER), measure=self.conformity, depth=self.conformity_depth
        )

    def _interval(self, units: int, statistic: Callable[[np.ndarray], float]) -> tuple[float, float]:
        return bootstrap_interval(units, statistic, self.draws, self.seed)


def judged_classes(scenes: Sequence[Scene], min_instances: int) -> frozenset[str]:
    """Classes with at least `min_instances` ground-truth objects among the scenes: the ones a dot's top-10
    results can show truly (half of ten needs five others besides the query's own)."""
    counts = Counter(label for scene in scenes for label in scene.objects())
    judged = frozenset(label for label, n in counts.items() if n >= min_instances)
    if not judged:
        raise BadArgumentError(f"no class has {min_instances} instances in these scenes: nothing can be judged")
    return judged


def run_dots_study(
    tune_scenes: Sequence[Scene],
    report_scenes: Sequence[Scene],
    catalog: Mapping[str, CatalogPin],
    insight: Insight,
    judged: frozenset[str],
    *,
    floor: float,
    beta: float,
    draws: int,
    seed: int,
    progress: bool,
) -> DotsStudy:
    """Collect both splits' candidates, tune every row on the tuning split, and keep it all for the report."""
    tuning = collect(tune_scenes, insight, catalog, floor, judged, progress)
    report = collect(report_scenes, insight, catalog, floor, judged, progress)
    thresholds = {name: tune(tuning, signals, floor, beta) for name, signals in ROWS.items() if signals}
    return DotsStudy(
        tuning,
        report,
        thresholds,
        catalog_pins=len(catalog),
        whole_images=len({pin.scene for pin in catalog.values()}),
        floor=floor,
        beta=beta,
        conformity=insight.settings.dot_conformity,
        conformity_depth=insight.settings.dot_conformity_depth,
        draws=draws,
        seed=seed,
    )


def evaluate_dots(
    tune_data: Path,
    report_data: Path,
    settings: Settings,
    work: Path,
    *,
    floor: float = 0.25,
    beta: float = 0.5,
    min_instances: int = 10,
    draws: int = 1000,
    seed: int = 0,
    limit: int | None = None,
    progress: bool = True,
) -> DotsStudy:
    """The whole protocol: tune on `tune_data`'s val scenes, report on `report_data`'s (its train scenes only
    join the catalog); the evaluation's catalog is a home of its own under `work`, reused by later runs."""
    if not 0 < floor < 1:
        raise BadArgumentError(f"--floor must be between 0 and 1, got {floor}")
    report_scenes = load_scenes(report_data, "val", limit)
    reported = {scene.name for scene in report_scenes}
    tune_scenes = [scene for scene in load_scenes(tune_data, "val", limit) if scene.name not in reported]
    try:
        extra = load_scenes(report_data, "train", limit)
    except BadDatasetError:
        extra = []
    pooled = list({scene.name: scene for scene in (*tune_scenes, *report_scenes, *extra)}.values())
    # one catalog per (scenes, detector): a rerun on other scenes or with another detector builds its own
    made_of = [settings.detector, str(settings.min_score), *sorted(scene.name for scene in pooled)]
    digest = hashlib.sha256("\n".join(made_of).encode()).hexdigest()[:10]
    # a pin's stored objects give its labels for conformity; sliding windows name nothing
    home = evaluation_settings(settings, work / f"catalog-{digest}").model_copy(update={"object_windows": False})
    with Engine(home) as engine:
        searcher = engine.searcher
        catalog = build_catalog(pooled, load_captions([tune_data, report_data]), engine, searcher.detector(), progress)
        return run_dots_study(
            tune_scenes,
            report_scenes,
            catalog,
            Insight(searcher),
            judged_classes(pooled, min_instances),
            floor=floor,
            beta=beta,
            draws=draws,
            seed=seed,
            progress=progress,
        )


def write_dots_report(study: DotsStudy, out: Path | None, command: str) -> str:
    """The tables as markdown (returned), and with `out`: dots.md, dots.csv, dots-roc.png, dots-precision.png."""
    tables = [_rows_table(study, iou) for iou in IOUS]
    text = f"""# Flashlight dots: which detected objects to show (the paper's Table 5)

`{command}`

{_protocol(study)}

## Report scenes

{(chr(10) * 2).join(markdown for markdown, _ in tables)}

## The bar

{_bar(study)}

{_ceiling(study)}

## Each signal alone: ROC AUC, useful against wrong dots (each dot judged alone, IoU 0.5)

{_auc_table(study)}

![ROC](dots-roc.png)
![precision against dots per image](dots-precision.png)
"""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        numbers = ["precision", "precision_low", "precision_high", "recall", "recall_low", "recall_high"]
        header = ["split", "iou", "row", *numbers, "dots_per_image", "thresholds"]
        with atomic_path(out / "dots.csv") as tmp:
            tmp.write_text(csv_text(header, [row for _, rows in tables for row in rows]))
        with atomic_path(out / "dots.md") as tmp:
            tmp.write_text(text)
        plot_roc(study, out / "dots-roc.png")
        plot_precision_by_dots(study, out / "dots-precision.png")
    return text


def _protocol(study: DotsStudy) -> str:
    tune, report = study.tune, study.report
    return (
        f"Catalog: {study.catalog_pins} pins, the whole images of {study.whole_images} scenes and crops of their "
        f"ground-truth boxes (sides of at least {MIN_CROP_SIDE} px); each pin's category is the detector's best "
        "label on it, its stored objects the detector's (`viscover objects`), its text its scene's captions where it "
        "has them. Candidates: the detector's boxes scoring at "
        f"least {study.floor} on {len(tune.scenes)} tuning scenes ({len(tune)} boxes) and {len(report.scenes)} "
        f"report scenes ({len(report)} boxes), each searched without its own scene's pins. A shown dot is useful "
        f"when it matches a ground-truth box not matched yet and at least {USEFUL_SHARE:.0%} of its top {TOP} "
        f"results truly contain that box's class; judged classes ({len(report.judged)}, those with enough "
        f"instances): {', '.join(sorted(report.judged))}. Each row's thresholds maximise F{study.beta:g} of useful "
        'dots on the tuning scenes at IoU 0.5; "detector score alone" shows as many dots as "all three", by '
        f"detector score. Conformity is {CONFORMITY_TEXT[study.conformity]} (the settings' `dot_conformity`); "
        f'the paper\'s conformity row uses {CONFORMITY_TEXT["largest"]} ("largest share"); both over the top '
        f"{study.conformity_depth} results. Intervals: {study.draws} bootstrap resamples of scenes."
    )


def _rows_table(study: DotsStudy, iou: float) -> tuple[str, list[list[object]]]:
    """One IoU's table (markdown) and its CSV rows for both splits."""
    header = ["row", "thresholds", "precision [95% CI]", "recall [95% CI]", "dots/image", "tune precision"]
    report, tuned = study.scores(study.report, iou), study.scores(study.tune, iou)
    rows, csv_rows = [], []
    for name, scores in report.items():
        rows.append(
            [
                name,
                _thresholds_text(study, name),
                f"{scores.precision:.3f} [{scores.precision_ci[0]:.3f}, {scores.precision_ci[1]:.3f}]",
                f"{scores.recall:.3f} [{scores.recall_ci[0]:.3f}, {scores.recall_ci[1]:.3f}]",
                f"{scores.dots_per_image:.2f}",
                f"{tuned[name].precision:.3f}",
            ]
        )
        thresholds = json.dumps(study.thresholds.get(name, {}), sort_keys=True)
        csv_rows += [
            [split, iou, name, *_csv_numbers(table[name]), thresholds]
            for split, table in (("report", report), ("tune", tuned))
        ]
    return f"### IoU >= {iou}\n\n{markdown_rows(header, rows)}", csv_rows


def _bar(study: DotsStudy) -> str:
    ratio, (low, high) = study.gain()
    paper, (paper_low, paper_high) = study.gain("all three, the paper's conformity")
    measured = CONFORMITY_TEXT[study.conformity]
    return (
        f"All three filters (conformity: {measured}) against the detector score alone at the same dots per image "
        f"(report scenes, IoU 0.5): precision ratio **{ratio:.2f}** [95% CI {low:.2f}, {high:.2f}]; the bar is "
        f"{BAR:.2f}: **{'met' if ratio >= BAR else 'missed'}**. With the paper's conformity "
        f"({CONFORMITY_TEXT['largest']}) instead: {paper:.2f} [95% CI {paper_low:.2f}, {paper_high:.2f}]."
    )


def _ceiling(study: DotsStudy) -> str:
    rows = []
    for least, found in study.ceilings().items():
        if found is not None:
            ratio, thresholds, dots = found
            shown = ", ".join(f"{signal} >= {value:.3g}" for signal, value in thresholds.items())
            rows.append([f"{least:g}", f"{ratio:.2f}", shown, f"{dots:.2f}"])
    return (
        "Within reach at all? The best ratio any thresholds of the tuning grid give on the tuning scenes "
        f"themselves (at least {CEILING_MIN_DOTS} dots shown), by the dots per image they keep:\n\n"
        + markdown_rows(["dots/image at least", "best tune ratio", "thresholds", "dots/image"], rows)
    )


def _auc_table(study: DotsStudy) -> str:
    tune_auc = study.auc(study.tune, intervals=False)
    rows = [
        [signal, f"{area:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]", f"{tune_auc[signal][0]:.3f}"]
        for signal, (area, ci) in study.auc(study.report).items()
    ]
    return markdown_rows(["signal", "report AUC [95% CI]", "tune AUC"], rows)


def _thresholds_text(study: DotsStudy, name: str) -> str:
    if name == "detector score alone":
        return "top boxes by score"
    given = study.thresholds.get(name, {"detector": study.floor})
    return ", ".join(f"{signal} >= {value:.3g}" for signal, value in given.items())


def _csv_numbers(scores: RowScores) -> list[str]:
    values = (scores.precision, *scores.precision_ci, scores.recall, *scores.recall_ci, scores.dots_per_image)
    return [f"{v:.4f}" for v in values]


def plot_roc(study: DotsStudy, path: Path) -> None:
    """Each signal's ROC curve on the report scenes."""
    candidates = study.report
    outcome = candidates.each_alone(IOUS[0])
    judged = outcome >= WRONG
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for column, signal in enumerate(SIGNALS):
        y = outcome[judged] == USEFUL
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, candidates.signals[judged, column])
            ax.plot(fpr, tpr, label=f"{signal} (AUC {roc_auc_score(y, candidates.signals[judged, column]):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate (wrong dots)")
    ax.set_ylabel("true positive rate (useful dots)")
    ax.set_title("Dot signals on the report scenes, IoU 0.5")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_precision_by_dots(study: DotsStudy, path: Path) -> None:
    """Precision against dots per image: the detector score swept, and each row's tuned thresholds."""
    candidates = study.report
    counts = np.unique(np.linspace(1, len(candidates), 40).astype(int))
    sweep = np.array([candidates.tally(candidates.best_scored(n), IOUS[0]).rates()[::2] for n in counts])
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    ax.plot(sweep[:, 1], sweep[:, 0], color="grey", label="detector score swept")
    for name, scores in study.scores(candidates, IOUS[0]).items():
        error = np.abs(np.array([scores.precision_ci]).T - scores.precision)
        ax.errorbar(scores.dots_per_image, scores.precision, yerr=error, fmt="o", capsize=3, label=name)
    ax.set_xlabel("dots per image")
    ax.set_ylabel("precision of shown dots")
    ax.set_title("Report scenes, IoU 0.5 (bars: 95% bootstrap CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
