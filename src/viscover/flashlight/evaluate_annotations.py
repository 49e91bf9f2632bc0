"""`viscover eval annotations`: are a result list's annotations about the query? (section 7 of the paper)

Queries are held out of the catalog and its text index, split by the unit that leaks: in fashion-small a product
name without its colour words (one product's colour variants), in ikea-rooms a room (no product of a held-out
room, nor any roommate of a query, is in the catalog). An annotation is right when its term is
in the query's own text (description and category, analysed as the catalog analyses pins). Two baselines: the
catalog's most frequent terms (the same for every query) and neighbour voting (terms ranked by how many result
pins hold them, no idf). Thresholds are set on the dev queries and reported on the test queries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from viscover.config import Settings
from viscover.errors import BadArgumentError
from viscover.evaluate.bootstrap import bootstrap_interval
from viscover.evaluate.corpora import Item, load_items, open_catalog, split_items
from viscover.evaluate.report import csv_text, markdown_rows
from viscover.flashlight import Flashlight
from viscover.ingest import read_bytes
from viscover.ingest.text import as_term, pin_terms
from viscover.search import BytesQuery, Searcher, SearchHit
from viscover.search.annotations import METHODS, Annotation, annotate, best_terms
from viscover.search.stream import ResultStream
from viscover.storage import atomic_path

RANKERS = (*METHODS, "neighbour votes", "most frequent")
SHOWN = 5  # annotations judged per query: P@1 and P@5
TOP = 10  # results judged for category precision
BATCH = 32  # queries embedded at a time


@dataclass
class QueryOutcome:
    """One query's annotations per ranker, judged against its own text, and the narrowing click."""

    own: frozenset[str]
    rankings: dict[str, list[Annotation]]
    category: str | None
    chips_name_category: dict[str, bool] = field(default_factory=dict)  # per method
    precision_before: float = 0.0  # category P@10 of the visual results
    precision_after: dict[str, float] = field(default_factory=dict)  # per method, after clicking the top chip

    def correct(self, ranker: str) -> list[bool]:
        return [a.term in self.own for a in self.rankings[ranker][:SHOWN]]


def run_queries(items: Sequence[Item], flashlight: Flashlight, progress: bool, desc: str) -> list[QueryOutcome]:
    """Search each held-out query by its image; rank annotations every way; click the top chip."""
    searcher: Searcher = flashlight.searcher
    settings = searcher.settings
    pins = len(searcher.catalog)
    frequent = best_terms(
        {term: df / pins for term, df in searcher.catalog.frequent_terms(50) if df >= settings.annotation_min_df},
        settings.annotation_count,
    )
    model = searcher.require_index(searcher.snapshot().visual, "index").model
    outcomes = []
    with tqdm(total=len(items), desc=desc, disable=not progress) as bar:
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            vectors = searcher.embed([BytesQuery(read_bytes(item.image), name=item.image) for item in batch], model)
            for item, vector in zip(batch, vectors, strict=True):
                stream = searcher.stream(vector)
                rankings = {**_rankings(searcher, stream.hits(0, settings.annotation_depth)), "most frequent": frequent}
                own = frozenset(pin_terms(item.description, (), item.category))
                outcomes.append(_click_top_chip(flashlight, stream, QueryOutcome(own, rankings, item.category)))
            bar.update(len(batch))
    return outcomes


def _rankings(searcher: Searcher, hits: Sequence[SearchHit]) -> dict[str, list[Annotation]]:
    """The results' annotations by each aggregation, and by neighbour votes (pins holding a term, no idf)."""
    settings = searcher.settings
    terms = searcher.catalog.term_counts([hit.key for hit in hits], settings.annotation_min_df)
    pins, count = len(searcher.catalog), settings.annotation_count
    rankings = {method: annotate(hits, terms, pins, method, count) for method in METHODS}
    votes = Counter(term for hit in hits for term in terms.get(hit.key, {}))
    rankings["neighbour votes"] = best_terms({term: n / len(hits) for term, n in votes.items()}, count)
    return rankings


def _click_top_chip(flashlight: Flashlight, stream: ResultStream, outcome: QueryOutcome) -> QueryOutcome:
    """Whether each method's chips name the query's category, and category P@10 before and after its top chip
    narrows the results."""
    outcome.precision_before = _category_precision(stream.hits(0, TOP), outcome.category)
    wanted = as_term(outcome.category)
    for method in METHODS:
        chips = [a.term for a in outcome.rankings[method]]
        outcome.chips_name_category[method] = wanted is not None and wanted in chips
        narrowed = flashlight.narrowed(stream, chips[0], 0, TOP) if chips else stream.hits(0, TOP)
        outcome.precision_after[method] = _category_precision(narrowed, outcome.category)
    return outcome


def _category_precision(hits: Sequence, category: str | None) -> float:
    """Share of the TOP positions holding a pin of the category (positions left empty count as misses)."""
    return sum(hit.pin.category == category for hit in hits[:TOP]) / TOP


@dataclass
class CorpusStudy:
    """One data set's queries, judged; the annotation threshold set on dev."""

    name: str
    catalog_pins: int
    dev: list[QueryOutcome]
    test: list[QueryOutcome]
    target: float
    draws: int
    seed: int

    def precision_at(self, outcomes: Sequence[QueryOutcome], ranker: str, n: int) -> tuple[float, tuple[float, float]]:
        """Mean over queries of right terms among the first n annotations (empty slots count as wrong)."""
        per_query = np.array([sum(o.correct(ranker)[:n]) / n for o in outcomes])
        return self._mean(per_query)

    def scores_and_rightness(self, outcomes: Sequence[QueryOutcome], method: str) -> tuple[np.ndarray, np.ndarray]:
        """Every shown annotation of a method (first SHOWN per query): its score and whether it is right."""
        pairs = [(a.score, a.term in o.own) for o in outcomes for a in o.rankings[method][:SHOWN]]
        scores, right = zip(*pairs, strict=True) if pairs else ((), ())
        return np.array(scores, dtype=float), np.array(right, dtype=bool)

    def threshold(self, method: str) -> float:
        """The least score at which the dev queries' shown annotations are right at least `target` of the time
        (over annotations scoring at least it); infinity when no score reaches the target."""
        scores, right = self.scores_and_rightness(self.dev, method)
        for least in np.unique(scores):
            kept = scores >= least
            if right[kept].mean() >= self.target:
                return float(least)
        return float("inf")

    def kept_precision(self, outcomes: Sequence[QueryOutcome], method: str, least: float) -> tuple[float, float]:
        """Precision of the annotations scoring at least `least`, and the share of annotations kept."""
        scores, right = self.scores_and_rightness(outcomes, method)
        kept = scores >= least
        return (float(right[kept].mean()) if kept.any() else float("nan")), float(kept.mean()) if len(kept) else 0.0

    def narrowing(self, outcomes: Sequence[QueryOutcome], method: str) -> dict[str, tuple[float, tuple[float, float]]]:
        return {
            "chips name the category": self._mean(np.array([o.chips_name_category[method] for o in outcomes], float)),
            "category P@10 before": self._mean(np.array([o.precision_before for o in outcomes])),
            "category P@10 after the top chip": self._mean(np.array([o.precision_after[method] for o in outcomes])),
        }

    def _mean(self, values: np.ndarray) -> tuple[float, tuple[float, float]]:
        if not len(values):
            return float("nan"), (float("nan"), float("nan"))
        return float(values.mean()), bootstrap_interval(
            len(values), lambda idx: float(values[idx].mean()), self.draws, self.seed
        )


def evaluate_annotations(
    folders: Sequence[Path],
    settings: Settings,
    work: Path,
    *,
    holdout: float = 0.2,
    target: float = 0.5,
    draws: int = 1000,
    seed: int = 0,
    limit: int | None = None,
    progress: bool = True,
) -> list[CorpusStudy]:
    """Per data set: split, build (or reuse) its catalog in a home under `work`, run the dev and test queries."""
    studies = []
    for folder in folders:
        name, items = load_items(Path(folder))
        split = split_items(items[:limit], holdout, seed)
        if not split.dev or not split.test:
            raise BadArgumentError(f"{folder}: too few items to hold out dev and test queries")
        with open_catalog(name, split, settings, work, progress) as engine:
            flashlight = Flashlight(engine.searcher)
            dev = run_queries(split.dev, flashlight, progress, f"{name}: dev queries")
            test = run_queries(split.test, flashlight, progress, f"{name}: test queries")
            studies.append(CorpusStudy(name, len(engine.catalog), dev, test, target, draws, seed))
    return studies


def best_method(studies: Sequence[CorpusStudy]) -> str:
    """The aggregation with the best mean dev P@1 + P@5 over the data sets: the default it earns."""
    return max(
        METHODS,
        key=lambda m: sum(s.precision_at(s.dev, m, 1)[0] + s.precision_at(s.dev, m, SHOWN)[0] for s in studies),
    )


def write_annotations_report(studies: Sequence[CorpusStudy], out: Path | None, command: str) -> str:
    """The tables as markdown (returned), and with `out`: annotations.md, .csv and two plots."""
    chosen = best_method(studies)
    sections, csv_rows = [], []
    for study in studies:
        rows = []
        for ranker in RANKERS:
            cells = [ranker]
            for split, outcomes in (("test", study.test), ("dev", study.dev)):
                for n in (1, SHOWN):
                    value, (low, high) = study.precision_at(outcomes, ranker, n)
                    cells.append(f"{value:.3f} [{low:.3f}, {high:.3f}]" if split == "test" else f"{value:.3f}")
                    csv_rows.append([study.name, split, ranker, f"P@{n}", value])
            rows.append(cells)
        least = study.threshold(chosen)
        precision, kept = study.kept_precision(study.test, chosen, least)
        narrowing_rows = [
            [label, f"{value:.3f} [{low:.3f}, {high:.3f}]"]
            for label, (value, (low, high)) in study.narrowing(study.test, chosen).items()
        ]
        sections.append(
            f"""## {study.name}

{study.catalog_pins} catalog pins; {len(study.dev)} dev and {len(study.test)} test queries, held out by unit.

{markdown_rows(["ranker", "test P@1 [95% CI]", "test P@5 [95% CI]", "dev P@1", "dev P@5"], rows)}

Annotation threshold ({chosen}): the least score at which dev annotations are right {study.target:.0%} of the
time is **{least:.3g}**; on the test queries the annotations at or above it are right {precision:.3f} of the
time, and {kept:.0%} of annotations are kept. Scores depend on a catalog's text: for a catalog like this one,
`VISCOVER_ANNOTATION_MIN_SCORE={least:.3g}` shows only annotations this sure.

Narrowing ({chosen}, test queries): the top chip clicked.

{markdown_rows(["measure", "value [95% CI]"], narrowing_rows)}
"""
        )
    text = f"""# Flashlight annotations: are they about the query?

`{command}`

Queries are held out of the catalog and its text index by the unit that leaks (fashion-small: the product
name without its colour words; ikea-rooms: the room, with every product of a held-out room). An annotation
is right when its term is in the query's own description or category. Baselines: the catalog's most
frequent terms (the same for every query) and neighbour voting (terms by how many of the top results hold
them, no idf). Intervals: bootstrap over queries.
Default aggregation by dev P@1 + P@{SHOWN}: **{chosen}**.

{chr(10).join(sections)}
![precision by ranker](annotations-precision.png)
![precision against score](annotations-score.png)
"""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "annotations.md") as tmp:
            tmp.write_text(text)
        with atomic_path(out / "annotations.csv") as tmp:
            tmp.write_text(csv_text(["dataset", "split", "ranker", "measure", "value"], csv_rows))
        plot_rankers(studies, out / "annotations-precision.png")
        plot_score_curve(studies, chosen, out / "annotations-score.png")
    return text


def plot_rankers(studies: Sequence[CorpusStudy], path: Path) -> None:
    """Test P@1 and P@5 per ranker, one panel per data set."""
    fig, axes = plt.subplots(1, len(studies), figsize=(5.5 * len(studies), 4.2), squeeze=False)
    for ax, study in zip(axes[0], studies, strict=True):
        x = np.arange(len(RANKERS))
        for offset, n in ((-0.2, 1), (0.2, SHOWN)):
            values = [study.precision_at(study.test, r, n) for r in RANKERS]
            error = np.array([[v - lo, hi - v] for v, (lo, hi) in values]).T
            ax.bar(x + offset, [v for v, _ in values], 0.4, yerr=error, capsize=3, label=f"P@{n}")
        ax.set_xticks(x, RANKERS, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{study.name}: test queries")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_score_curve(studies: Sequence[CorpusStudy], method: str, path: Path) -> None:
    """Precision of the annotations at or above a score, against that score; the dev threshold marked."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for study in studies:
        for split, outcomes, style in (("dev", study.dev, ":"), ("test", study.test, "-")):
            scores, right = study.scores_and_rightness(outcomes, method)
            order = np.argsort(-scores)
            precision = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
            ax.plot(scores[order], precision, style, label=f"{study.name} {split}")
        least = study.threshold(method)
        if np.isfinite(least):
            ax.axvline(least, color="grey", linewidth=0.8)
    ax.axhline(studies[0].target, color="black", linewidth=0.6, linestyle="--")
    ax.set_xscale("symlog")
    ax.set_xlabel(f"annotation score ({method}): annotations at or above it")
    ax.set_ylabel("precision against the query's own text")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
