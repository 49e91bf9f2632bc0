"""`viscover eval lens`: does each Lens source earn its place? (section 8 of the paper)

1. Object search, the paper's Figure 14 case, on ikea-rooms: the room photos are the catalog (objects found by
   each detector variant, embedded and indexed as `viscover objects` does); each product photo that appears in
   a room asks for the rooms holding it. Recall@1/5/10 of object search against whole-image search of the same
   photos. Rooms are split in two by a seeded draw: the variant is chosen on the products of the dev rooms and
   reported on the products that appear only in the report rooms.
2. Blend quality, on fashion-small (queries held out of the catalog and the text index by product, as
   `eval annotations` splits it): category P@10 of the blended feed against visual search alone, how often the
   text source fires, its precision by the confidence of the top annotation (the curve that sets the trigger,
   on dev), and diversity (distinct article types, mean pairwise cosine distance in the top 10).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from tqdm import tqdm

from viscover.config import Settings
from viscover.errors import BadArgumentError
from viscover.evaluate.bootstrap import bootstrap_interval
from viscover.evaluate.corpora import fashion_items, open_catalog, split_items
from viscover.evaluate.report import markdown_rows
from viscover.evaluate.workhome import evaluation_settings, ingest_rows
from viscover.ingest import read_bytes
from viscover.lens.blend import Candidate, SourceResults, blend
from viscover.lens.colours import plain_background
from viscover.lens.lens import Lens, precision_at
from viscover.search import BytesQuery, Engine, Searcher, SearchHit, index_objects
from viscover.storage import atomic_path

REGION_VARIANTS = (  # (name shown, least detector score, sliding windows too): YOLOX-Nano's boxes
    ("YOLOX-Nano ≥ 0.5 (before)", 0.5, False),
    ("YOLOX-Nano ≥ 0.1", 0.1, False),
    ("YOLOX-Nano ≥ 0.5 + windows", 0.5, True),
    ("YOLOX-Nano ≥ 0.1 + windows", 0.1, True),
)
DETECTOR = "yolox_nano"
RECALL_AT = (1, 5, 10)
TOP = 10  # feed positions judged
BUCKETS = 5  # annotation-confidence buckets of the text-precision curve (dev quantiles)
MAX_LOSS = 0.02  # the most category P@10 the blend may lose against visual search alone
OBJECT_HEADER = (
    "method",
    "objects per room",
    "report recall@1",
    "report recall@5",
    "report recall@10",
    "dev recall@10",
)
BLEND_HEADER = (
    "test feed",
    "category P@10",
    "P@10 where text fired",
    "distinct article types",
    "mean pairwise cosine distance",
    "text share of top 10",
)


# -- object search on ikea-rooms -----------------------------------------------------------------------------


@dataclass
class ObjectStudy:
    variants: list[str]
    dev_queries: int
    report_queries: int
    rooms: int
    dev: dict[str, dict[int, float]]  # method → k → mean recall@k
    report: dict[str, dict[int, tuple[float, tuple[float, float]]]]
    objects_per_room: dict[str, float]
    chosen: str  # best on dev among the regions at the settings' detector threshold
    best_overall: str  # best on dev among every variant
    ratio: tuple[float, tuple[float, float]]  # chosen over whole image, recall@10 on the report rooms
    precision: dict[str, dict[str, float]]  # split → method → P@10 (rooms holding the product among the ten)
    relative: float  # the chosen regions' dev P@10 over whole-image search's: the object source's setting
    blend: dict[str, tuple[float, tuple[float, float]]]  # report P@10 of visual alone and of the blend, where fired
    fired: float  # share of report queries that are product shots (the object source's trigger)


def _rooms(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "rooms.jsonl").read_text().splitlines()]


def evaluate_objects(
    folder: Path, settings: Settings, work: Path, seed: int, draws: int, progress: bool
) -> ObjectStudy:
    """Object search against whole-image search for product photos among ikea-rooms' room photos, and the blend
    of the two sources there, where object search fires."""
    rooms = [room for room in _rooms(folder) if room.get("image")]
    if len(rooms) < 4:
        raise BadArgumentError(f"{folder}: too few room photos for the object-search evaluation")
    images = {
        json.loads(line)["id"]: folder / json.loads(line)["image"]
        for line in (folder / "products.jsonl").read_text().splitlines()
    }
    order = np.random.default_rng(seed).permutation(len(rooms))
    dev_rooms = {rooms[i]["room"] for i in order[: len(rooms) // 2]}
    holding: dict[str, set[str]] = {}
    for room in rooms:
        for product in room["products"]:
            holding.setdefault(product, set()).add(room["room"])
    queries = sorted(p for p in holding if p in images)
    dev = [p for p in queries if holding[p] & dev_rooms]
    report = [p for p in queries if not holding[p] & dev_rooms]
    base = evaluation_settings(settings, work / "ikea-room-photos")
    rows = [
        {"id": room["room"], "image": str(folder / room["image"]), "category": room.get("type") or None}
        for room in rooms
    ]
    ranked: dict[str, dict[str, list[SearchHit]]] = {}
    objects_per_room = {}
    with Engine(base) as engine:
        ingest_rows(engine, rows, progress)
        ranked["whole image"] = _ranked(engine.searcher, queries, images, objects=False, progress=progress)
    for name, least, windows in REGION_VARIANTS:
        variant = {"detector": DETECTOR, "min_score": least, "object_windows": windows}
        with Engine(base.model_copy(update=variant)) as engine:
            report_ = index_objects(engine, progress=progress)
            objects_per_room[name] = report_.indexed / len(rooms)
            ranked[name] = _ranked(engine.searcher, queries, images, objects=True, progress=progress)
    methods = ["whole image", *(name for name, _, _ in REGION_VARIANTS)]

    def found(hits: Sequence[SearchHit], product: str, k: int) -> int:
        return len({hit.pin_id for hit in hits[:k]} & holding[product])

    def recall(method: str, products: Sequence[str], k: int) -> np.ndarray:
        return np.array([found(ranked[method][p], p, k) / len(holding[p]) for p in products])

    def precision(hits_of: Sequence[Sequence[SearchHit]], products: Sequence[str]) -> np.ndarray:
        return np.array([found(hits, p, TOP) / TOP for hits, p in zip(hits_of, products, strict=True)])

    # intervals resample report rooms (a product goes with its first room): products of one room are not
    # independent draws
    first_room = [min(holding[p]) for p in report]
    clusters = [np.flatnonzero(np.array(first_room) == room) for room in sorted(set(first_room))]

    def by_room(statistic: Callable[[np.ndarray], float]) -> tuple[float, tuple[float, float]]:
        whole_sample = np.arange(len(report))
        interval = bootstrap_interval(
            len(clusters), lambda idx: statistic(np.concatenate([clusters[i] for i in idx])), draws, seed
        )
        return statistic(whole_sample), interval

    dev_recall = {m: {k: float(recall(m, dev, k).mean()) for k in RECALL_AT} for m in methods}
    report_recall = {
        m: {k: by_room(lambda idx, v=recall(m, report, k): float(v[idx].mean())) for k in RECALL_AT} for m in methods
    }
    at_threshold = [name for name, least, _ in REGION_VARIANTS if least == settings.min_score] or methods[1:]
    chosen = max(at_threshold, key=lambda m: dev_recall[m][10])
    ours, whole = recall(chosen, report, 10), recall("whole image", report, 10)
    ratio = by_room(lambda idx: float(ours[idx].mean() / max(whole[idx].mean(), 1e-9)))
    p_at = {
        split: {m: float(precision([ranked[m][p] for p in products], products).mean()) for m in methods}
        for split, products in (("dev", dev), ("report", report))
    }
    relative = p_at["dev"][chosen] / max(p_at["dev"]["whole image"], 1e-9)
    # the blend where object search fires: a product shot (the photo on a plain backdrop) asks both sources
    shots = [plain_background(Image.open(images[p])) for p in report]
    visual_alone = [_blended({"visual": ranked["whole image"][p]}, {"visual": 1.0}) for p in report]
    both = [
        _blended({"visual": ranked["whole image"][p], "object": ranked[chosen][p]}, {"visual": 1.0, "object": relative})
        if shot
        else alone
        for p, shot, alone in zip(report, shots, visual_alone, strict=True)
    ]
    fired = np.array(shots)
    blend_precision = {
        "visual only": precision(visual_alone, report),
        "blend (visual + object)": precision(both, report),
    }

    def where_fired(values: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda idx: float(values[idx][fired[idx]].mean()) if fired[idx].any() else float("nan")

    return ObjectStudy(
        methods,
        len(dev),
        len(report),
        len(rooms),
        dev_recall,
        report_recall,
        objects_per_room,
        chosen,
        max(methods[1:], key=lambda m: dev_recall[m][10]),
        ratio,
        p_at,
        relative,
        {name: by_room(where_fired(values)) for name, values in blend_precision.items()},
        float(fired.mean()),
    )


def _blended(hits: dict[str, Sequence[SearchHit]], precision: dict[str, float]) -> list[SearchHit]:
    """The top TOP of a blend of the sources' hits with these precisions."""
    sources = [
        SourceResults(name, True, "", precision[name], [Candidate(hit, name) for hit in found])
        for name, found in hits.items()
    ]
    return [placed.candidate.hit for placed in blend(sources, TOP)[0]]


def _ranked(
    searcher: Searcher, products: Sequence[str], images: dict[str, Path], objects: bool, progress: bool
) -> dict[str, list[SearchHit]]:
    """Each product photo's best rooms (2 * TOP, to blend), by object search or by whole-image search."""
    found = {}
    for product in tqdm(products, desc="object search" if objects else "whole-image search", disable=not progress):
        query = BytesQuery(read_bytes(str(images[product])), name=product)
        found[product] = searcher.search_objects(query, 2 * TOP) if objects else searcher.search(query, 2 * TOP)
    return found


# -- blend quality on fashion-small --------------------------------------------------------------------------


@dataclass
class QueryRun:
    """One held-out query: its category, the top annotation's score, and what each source offered."""

    category: str | None
    confidence: float
    sources: list[SourceResults]
    vectors: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class BlendStudy:
    catalog_pins: int
    visual_precision: float  # dev
    buckets: list[tuple[float, float, int]]  # dev: (least confidence, text P@10, queries)
    trigger: float
    rows: list[dict[str, object]]  # report (test) measures
    fired: float  # share of test queries where text fired


def evaluate_blend(
    folder: Path, settings: Settings, work: Path, queries: int, seed: int, draws: int, progress: bool
) -> BlendStudy:
    split = split_items(fashion_items(folder), 0.2, seed)
    with open_catalog("fashion-small", split, settings, work, progress) as engine:
        model = engine.searcher.require_index(engine.searcher.snapshot().visual).model
        # every source on and text always asked: the trigger and quotas are set below from these runs
        every_source = {"lens_sources": ["visual", "text", "object"], "lens_text_min_annotation": 0.0}
        with Searcher(engine.settings.model_copy(update=every_source)) as searcher:
            lens = Lens(searcher)
            dev = _runs(lens, split.dev[:queries], model, progress, "lens: dev queries")
            test = _runs(lens, split.test[:queries], model, progress, "lens: test queries")
        pins = len(engine.catalog)
    visual_precision = float(np.mean([_precision(_feed(run, None), run.category) for run in dev]))
    buckets = _text_buckets(dev)
    table = relative_table(buckets, visual_precision)
    trigger = _trigger(dev, table)
    rows, fired = _blend_rows(test, table, trigger, draws, seed)
    return BlendStudy(pins, visual_precision, buckets, trigger, rows, fired)


def _runs(lens: Lens, items: Sequence, model: str, progress: bool, desc: str) -> list[QueryRun]:
    runs = []
    for item in tqdm(items, desc=desc, disable=not progress):
        understanding, sources = lens.sources(BytesQuery(read_bytes(item.image), name=item.image), 60)
        confidence = understanding.annotations[0].score if understanding.annotations else 0.0
        keys = [c.hit.key for s in sources for c in s.candidates[:TOP]]
        found, vectors = lens.searcher.catalog.features(model, keys)
        runs.append(QueryRun(item.category, confidence, sources, dict(zip(found.tolist(), vectors, strict=True))))
    return runs


def _feed(run: QueryRun, text_precision: float | None) -> list:
    """The blended top TOP: visual alone when `text_precision` (relative to visual search's) is None, else
    visual and text by quotas."""
    visual, text = replace(run.sources[0], precision=1.0), run.sources[1]
    if text_precision is None or not text.fired:
        return [placed.candidate.hit for placed in blend([visual], TOP)[0]]
    return [placed.candidate.hit for placed in blend([visual, replace(text, precision=text_precision)], TOP)[0]]


def _precision(hits: Sequence, category: str | None) -> float:
    return sum(hit.pin.category == category for hit in hits[:TOP]) / TOP


def _text_buckets(runs: Sequence[QueryRun]) -> list[tuple[float, float, int]]:
    """Text-source P@10 by the top annotation's score, in BUCKETS dev quantiles: (least score, P@10, queries)."""
    confident = np.array([run.confidence for run in runs if run.sources[1].fired])
    edges = np.unique(np.quantile(confident, np.linspace(0, 1, BUCKETS + 1)[:-1])) if len(confident) else []
    buckets = []
    for i, least in enumerate(edges):
        most = edges[i + 1] if i + 1 < len(edges) else np.inf
        inside = [run for run in runs if run.sources[1].fired and least <= run.confidence < most]
        if not inside:
            continue
        precision = np.mean([_precision([c.hit for c in run.sources[1].candidates], run.category) for run in inside])
        buckets.append((float(least), float(precision), len(inside)))
    return buckets


def _trigger(runs: Sequence[QueryRun], table: list[tuple[float, float]]) -> float:
    """The lowest bucket edge at which the blend, over the dev queries where text fires, loses at most MAX_LOSS
    category P@10 against visual alone (infinity when none does: text stays off)."""
    for least, _ in table:
        fired = [run for run in runs if run.sources[1].fired and run.confidence >= least]
        if not fired:
            continue
        loss = np.mean(
            [
                _precision(_feed(run, None), run.category)
                - _precision(_feed(run, precision_at(table, run.confidence)), run.category)
                for run in fired
            ]
        )
        if loss <= MAX_LOSS:
            return least
    return float("inf")


def relative_table(buckets: Sequence[tuple[float, float, int]], visual: float) -> list[tuple[float, float]]:
    """The curve as the `lens_text_precision` setting writes it: each bucket's precision over visual search's."""
    return [(least, precision / visual) for least, precision, _ in buckets]


def _blend_rows(
    runs: Sequence[QueryRun],
    table: list[tuple[float, float]],
    trigger: float,
    draws: int,
    seed: int,
) -> tuple[list[dict[str, object]], float]:
    fires = [run.sources[1].fired and run.confidence >= trigger for run in runs]
    feeds = {
        "visual only": [_feed(run, None) for run in runs],
        "blend (text at the trigger)": [
            _feed(run, precision_at(table, run.confidence) if fire else None)
            for run, fire in zip(runs, fires, strict=True)
        ],
        "blend (text always)": [_feed(run, precision_at(table, run.confidence)) for run in runs],
    }
    rows = []
    fired_idx = np.flatnonzero(fires)
    for name, feed in feeds.items():
        precision = np.array([_precision(hits, run.category) for hits, run in zip(feed, runs, strict=True)])
        types = np.array([len({hit.pin.category for hit in hits[:TOP]}) for hits in feed], dtype=float)
        spread = np.array([_spread(hits, run) for hits, run in zip(feed, runs, strict=True)])

        def mean(values: np.ndarray) -> tuple[float, tuple[float, float]]:
            if not len(values):
                return float("nan"), (float("nan"), float("nan"))
            return float(values.mean()), bootstrap_interval(
                len(values), lambda idx: float(values[idx].mean()), draws, seed
            )

        rows.append(
            {
                "feed": name,
                "category P@10": mean(precision),
                "P@10 where text fired": mean(precision[fired_idx]),
                "distinct article types": mean(types),
                "mean pairwise cosine distance": mean(spread),
                "text placed (share of top 10)": float(
                    np.mean([sum(h.source == "text" for h in hits[:TOP]) / TOP for hits in feed])
                ),
            }
        )
    return rows, float(np.mean(fires)) if fires else 0.0


def _spread(hits: Sequence, run: QueryRun) -> float:
    """Mean pairwise cosine distance of the feed's stored features."""
    vectors = np.array([run.vectors[hit.key] for hit in hits[:TOP] if hit.key in run.vectors])
    if len(vectors) < 2:
        return 0.0
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit.T
    pairs = np.triu_indices(len(unit), 1)
    return float((1 - cosine[pairs]).mean())


# -- report --------------------------------------------------------------------------------------------------


def write_lens_report(objects: ObjectStudy, blended: BlendStudy, out: Path | None, command: str) -> str:
    """The report as markdown (and under `out`: lens.md, lens.json and the plots)."""
    chosen = objects.chosen
    whole, ours = objects.report["whole image"][10][0], objects.report[chosen][10][0]
    ratio, (ratio_low, ratio_high) = objects.ratio
    verdict = "met" if ratio >= 2 else "missed"
    object_loss = objects.blend["visual only"][0] - objects.blend["blend (visual + object)"][0]
    table = relative_table(blended.buckets, blended.visual_precision)
    object_rows = [
        [
            method,
            f"{objects.objects_per_room.get(method, 0):.1f}" if method != "whole image" else "-",
            *(_with_interval(objects.report[method][k]) for k in RECALL_AT),
            f"{objects.dev[method][10]:.3f}",
        ]
        for method in objects.variants
    ]
    bucket_rows = [
        [f"{least:.3f}", f"{precision:.3f}", f"{precision / blended.visual_precision:.3f}", str(n)]
        for least, precision, n in blended.buckets
    ]
    blend_rows = [
        [
            str(row["feed"]),
            *(
                _with_interval(row[key])
                for key in (
                    "category P@10",
                    "P@10 where text fired",
                    "distinct article types",
                    "mean pairwise cosine distance",
                )
            ),
            f"{row['text placed (share of top 10)']:.2f}",
        ]
        for row in blended.rows
    ]
    visual, at_trigger = blended.rows[0], blended.rows[1]
    loss = visual["P@10 where text fired"][0] - at_trigger["P@10 where text fired"][0]
    text = f"""# Lens: does each source earn its place?

`{command}`

## Object search (the paper's Figure 14 case), ikea-rooms

{objects.rooms} room photos are the catalog. A product photo asks for the rooms holding it; rooms are split in
two by a seeded draw: the regions are chosen on the {objects.dev_queries} products of the dev rooms by
recall@10, and reported on the {objects.report_queries} products that appear only in the other rooms.
Intervals: bootstrap over report rooms (a product goes with its first room), not over products, which share
rooms.

{markdown_rows(OBJECT_HEADER, object_rows)}

Chosen on dev among the regions at the settings' detector threshold ({settings_threshold(objects)}; it also
decides each pin's dominant object for Related Pins): **{chosen}** (best on dev among all: {objects.best_overall}).
On the report rooms its recall@10 is {ours:.3f} against {whole:.3f} for whole-image search: **{ratio:.2f} times**
as much (paired bootstrap [{ratio_low:.2f}, {ratio_high:.2f}]); the bar is twice, so it is **{verdict}** on the
point estimate.

Precision@10 (the share of the ten rooms that hold the product; a product is in one or two of the rooms):
dev {objects.precision["dev"][chosen]:.3f} for the chosen regions against {objects.precision["dev"]["whole image"]:.3f}
for whole-image search, so the object source's precision relative to visual search is
**{objects.relative:.2f}** (report: {objects.precision["report"][chosen]:.3f} against
{objects.precision["report"]["whole image"]:.3f}).

The blend where object search fires (the {objects.fired:.0%} of report queries that are product shots, a plain
backdrop): P@10 {_with_interval(objects.blend["blend (visual + object)"])} for visual and object search blended by
those precisions, against {_with_interval(objects.blend["visual only"])} for visual search alone: it loses
**{object_loss:.3f}** (bar: at most {MAX_LOSS}), **{"met" if object_loss <= MAX_LOSS else "missed"}**.

## Blend quality, fashion-small

{blended.catalog_pins} catalog pins; queries held out by product (as `eval annotations` splits them). Visual
search's category P@10 on dev: {blended.visual_precision:.3f}.

Text-source category P@10 by the top annotation's score (dev quantiles), and over visual search's (the text
source's precision setting):

{markdown_rows(("least top-annotation score", "text P@10", "relative to visual", "dev queries"), bucket_rows)}

Trigger set on dev (the lowest score at which the blend loses at most {MAX_LOSS} P@10 where text fires):
**{blended.trigger:.3f}**; text fires on {blended.fired:.0%} of the test queries. Object search cannot fire here:
fashion-small's product photos have no object index (one product per photo); its blend is measured above.

{markdown_rows(BLEND_HEADER, blend_rows)}

Where text fires the blend loses **{loss:.3f}** P@10 against visual alone (bar: at most {MAX_LOSS}):
**{"met" if loss <= MAX_LOSS else "missed"}**.

Settings these numbers give (`VISCOVER_*`; precisions relative to visual search's on the same queries):
`LENS_OBJECT_PRECISION={objects.relative:.3f}`,
`LENS_TEXT_PRECISION='{json.dumps([[round(a, 3), round(b, 3)] for a, b in table])}'`,
`LENS_TEXT_MIN_ANNOTATION={blended.trigger:.3f}`.

![recall](lens-objects.png) ![text precision](lens-text-precision.png)
"""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "lens.md") as tmp:
            tmp.write_text(text)
        record = {"objects": objects.__dict__, "blend": blended.__dict__}
        with atomic_path(out / "lens.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=str))
        _plot_objects(objects, out / "lens-objects.png")
        _plot_buckets(blended, out / "lens-text-precision.png")
    return text


def settings_threshold(study: ObjectStudy) -> str:
    """The detector threshold of the chosen regions, as the report names it."""
    return next(f"{least:g}" for name, least, _ in REGION_VARIANTS if name == study.chosen)


def _with_interval(value: tuple[float, tuple[float, float]]) -> str:
    mean, (low, high) = value
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _plot_objects(study: ObjectStudy, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method in study.variants:
        ax.plot(RECALL_AT, [study.report[method][k][0] for k in RECALL_AT], marker="o", label=method)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k of the rooms holding the product")
    ax.set_title("ikea-rooms: product photo → rooms (report split)")
    ax.legend(fontsize=8)
    _save(fig, path)


def _plot_buckets(study: BlendStudy, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot([b[0] for b in study.buckets], [b[1] for b in study.buckets], marker="o", label="text source P@10 (dev)")
    ax.axhline(study.visual_precision, color="grey", linestyle="--", label="visual search P@10 (dev)")
    if np.isfinite(study.trigger):
        ax.axvline(study.trigger, color="red", linestyle=":", label="trigger")
    ax.set_xlabel("least top-annotation score (bucket)")
    ax.set_ylabel("category P@10")
    ax.legend(fontsize=8)
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
