"""`viscover eval related`: the paper's Table 4 as offline rows, on boards people (or stylists) made.

Rooms of ikea-rooms play boards. They are split into train and test by seed (never items); the graph, the
categories and every ranker come from the training rooms only. Each item of a test room is a query, and the
other items of that room are what it should find. A query is warm when it is in some training room, cold when
it is in none (then only visual and text candidates exist). Rows: random and popularity baselines, each
candidate source alone, the Rank-SVM on co-occurrence features (the paper's control) and with neighbour-board,
visual, category-cross, text and dominant-object features added. Intervals: paired bootstrap over test rooms,
pooled over the seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from viscover.config import Settings
from viscover.errors import BadArgumentError, BadManifestError
from viscover.evaluate.bootstrap import bootstrap_interval
from viscover.evaluate.report import csv_text, markdown_rows
from viscover.evaluate.workhome import evaluation_settings, ingest_rows
from viscover.ingest.sources import read_json_objects
from viscover.related.graph import BoardGraph, best_first
from viscover.related.related import (
    AUTO_SETS,
    KINDS,
    SOURCES,
    Candidates,
    RelatedModel,
    RelatedPins,
    VisualVectors,
    visual_vectors,
)
from viscover.related.train import FOLDS, TrainReport, fit_model, training_rows
from viscover.search import Engine, Searcher
from viscover.search.objects import index_objects
from viscover.storage import atomic_path

TOP = 10
BASELINES = ("random", "popularity", *SOURCES)
# the full ranker is the shipped default: a feature set per kind of query, chosen on inner splits of the training
# rooms (benchmarks/related_auto.py), and a variant
SHIPPED_SETS = {kind: Settings.model_fields[f"related_{kind}_features"].default for kind in KINDS}
SHIPPED_VARIANT = Settings.model_fields["related_variant"].default
FULL = "shipped: " + ", ".join(f"{kind} {SHIPPED_SETS[kind]}" for kind in KINDS) + f" (variant {SHIPPED_VARIANT})"
AUTO = "auto features and variant"
RANKERS: dict[str, tuple[str | dict[str, str], str]] = {  # row → (feature set, or one per kind; variant)
    "control (co-occurrence features)": ("cooccurrence", "none"),
    "+ neighbour boards": ("neighbours", "none"),
    "+ visual": ("visual", "none"),
    "+ category cross": ("category", "none"),
    "+ text": ("text", "none"),
    "variant A": ("text", "A"),
    "variant B": ("text", "B"),
    "variant C": ("text", "C"),
    AUTO: ("auto", "auto"),
    FULL: (SHIPPED_SETS, SHIPPED_VARIANT),
}
ROWS = (*BASELINES, *RANKERS)
CONTROL = "control (co-occurrence features)"
BARS = {"warm": ("cooccurrence", 1.15), "cold": ("popularity", 3.0)}  # the full ranker over this row, at least


@dataclass(frozen=True)
class Room:
    name: str
    kind: str
    keys: tuple[int, ...]


@dataclass
class Outcome:
    """One test query: its room (the bootstrap unit), whether warm, and each row's measures."""

    unit: str
    seed: int
    warm: bool
    candidate_recall: float
    recall: dict[str, float] = field(default_factory=dict)
    ndcg: dict[str, float] = field(default_factory=dict)


def load_rooms(folder: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """ikea-rooms' products (as manifest rows without boards: the evaluation makes its own graph) and rooms."""
    products, rooms = (
        read_json_objects(folder / name, "ikea-rooms' " + name) for name in ("products.jsonl", "rooms.jsonl")
    )
    try:
        rows = [
            {k: row.get(k) for k in ("id", "description", "category")}
            | {"image": str((folder / row["image"]).resolve())}
            for row in products
        ]
        for room in rooms:
            room["room"], room["products"] = str(room["room"]), list(room["products"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadManifestError(f"{folder}: not laid out as ikea-rooms ({exc!r} missing or wrong)") from None
    return rows, rooms


def ranking_metrics(ranking: Sequence[int], relevant: set[int]) -> tuple[float, float]:
    """recall@TOP and binary NDCG@TOP of a ranking."""
    top = list(ranking)[:TOP]
    gains = np.array([float(key in relevant) for key in top])
    dcg = float((gains / np.log2(np.arange(2, len(gains) + 2))).sum()) if len(gains) else 0.0
    ideal = float((1 / np.log2(np.arange(2, min(TOP, len(relevant)) + 2))).sum())
    return float(gains.sum()) / len(relevant), dcg / ideal


@dataclass(frozen=True)
class RoomSplit:
    """One seed's rooms: training saves (pin keys, board = room index) and the test rooms."""

    pins: np.ndarray
    boards: np.ndarray
    board_types: dict[int, str]
    test_rooms: set[int]


def split_rooms(rooms: Sequence[Room], test_share: float, seed: int) -> RoomSplit:
    """A seeded share of the rooms (never items) for testing; the rest's saves and room types for training."""
    order = np.random.default_rng(seed).permutation(len(rooms))
    test_rooms = {int(i) for i in order[: max(1, round(test_share * len(rooms)))]}
    train = [(key, board) for board, room in enumerate(rooms) if board not in test_rooms for key in room.keys]
    pins, boards = np.array(train, dtype=np.int64).T
    board_types = {board: room.kind for board, room in enumerate(rooms) if board not in test_rooms}
    return RoomSplit(pins, boards, board_types, test_rooms)


def run_seed(
    searcher: Searcher,
    rooms: Sequence[Room],
    vectors: dict[str, VisualVectors],
    *,
    test_share: float,
    seed: int,
    progress: bool,
    folds: int = FOLDS,
) -> tuple[list[Outcome], str]:
    """Split rooms, train every ranker row on the training rooms, and measure every row on the test rooms; also
    say what the full ranker chose on the held-out folds of the training boards."""
    split = split_rooms(rooms, test_share, seed)
    graph = BoardGraph(split.pins, split.boards)
    rows = training_rows(
        searcher,
        split.pins,
        split.boards,
        board_types=split.board_types,
        vectors=vectors,
        folds=folds,
        seed=seed,
        progress=False,
    )
    trained = {
        row: fit_model(rows, feature_set, variant, seed, searcher.settings.threads)
        for row, (feature_set, variant) in tqdm(
            RANKERS.items(), desc=f"related: rankers (seed {seed})", disable=not progress
        )
    }
    rankers = {row: RelatedPins(searcher, lambda: graph, model, vectors) for row, (model, _) in trained.items()}
    sources = RelatedPins(searcher, lambda: graph, None, vectors)
    everyone = searcher.catalog.feature_keys(vectors["pool"].model)
    popular = graph.popularity().keys.tolist()
    queries = [(board, key) for board in sorted(split.test_rooms) for key in rooms[board].keys]
    pins_by_key = searcher.catalog.by_keys(sorted({key for _, key in queries}))
    outcomes = []
    for board, key in tqdm(queries, desc=f"related: test queries (seed {seed})", disable=not progress):
        relevant = set(rooms[board].keys) - {key}
        if not relevant or key not in pins_by_key:
            continue
        pin = pins_by_key[key]
        candidates = sources.candidates(pin, graph)
        rankings = _baseline_rankings(candidates, everyone, popular, key, seed)
        for row, related in rankers.items():
            score, _, _ = related.scores(pin, candidates, graph)
            rankings[row] = best_first(candidates.keys, score).keys.tolist()
        outcome = Outcome(
            f"{seed}:{rooms[board].name}",
            seed,
            graph.degree(key) > 0,
            len(relevant & set(candidates.keys.tolist())) / len(relevant),
        )
        for row, ranking in rankings.items():
            outcome.recall[row], outcome.ndcg[row] = ranking_metrics(ranking, relevant)
        outcomes.append(outcome)
    return outcomes, _choices(*trained[AUTO])


def _choices(model: RelatedModel, report: TrainReport) -> str:
    """What `auto` chose per query kind, with the held-out recall@10 of its choice, the simplest choice and
    the best, and the standard errors of the choice's and the simplest's shortfalls from the best."""
    simplest = (AUTO_SETS[0], "none")
    held_out = []
    for kind, recall in report.dev_recall.items():
        choice, error = (model.feature_sets[kind], model.variants[kind]), report.dev_error[kind]
        held_out.append(
            f"{kind} {recall[choice]:.4f} against the simplest's {recall[simplest]:.4f} and the best's "
            f"{max(recall.values()):.4f} (one standard error of the shortfall: {error[choice]:.4f} for the choice, "
            f"{error[simplest]:.4f} for the simplest)"
        )
    return f"{model.describe()}; held-out recall@10: {', '.join(held_out) or 'not compared'}"


def _baseline_rankings(
    candidates: Candidates, everyone: np.ndarray, popular: list[int], key: int, seed: int
) -> dict[str, list[int]]:
    others = everyone[everyone != key]
    rng = np.random.default_rng([seed, key])
    return {
        "random": rng.choice(others, min(TOP, len(others)), replace=False).tolist(),
        "popularity": [k for k in popular[: TOP + 1] if k != key],
        **{source: candidates.ranking(source) for source in SOURCES},
    }


@dataclass
class RelatedStudy:
    """Every seed's test outcomes, and the summaries the report prints."""

    outcomes: list[Outcome]
    seeds: tuple[int, ...]
    choices: dict[int, str]  # seed → what `auto` chose on that seed's training boards
    catalog_pins: int
    rooms: int
    draws: int
    folds: int = FOLDS  # of training boards, the rankers cross-fitted over

    def subset(self, warm: bool) -> list[Outcome]:
        return [o for o in self.outcomes if o.warm == warm]

    def _by_room(self, outcomes: Sequence[Outcome], statistic: Callable[[np.ndarray], float]) -> tuple[float, float]:
        """A bootstrap interval of `statistic(query rows)` resampling rooms, each with all of its queries."""
        rooms: dict[str, list[int]] = {}
        for row, outcome in enumerate(outcomes):
            rooms.setdefault(outcome.unit, []).append(row)
        members = [np.array(rows) for rows in rooms.values()]
        return bootstrap_interval(
            len(members), lambda picked: statistic(np.concatenate([members[u] for u in picked])), self.draws
        )

    def mean(self, outcomes: Sequence[Outcome], values: np.ndarray) -> tuple[float, tuple[float, float]]:
        """The mean over queries, with a bootstrap interval over rooms."""
        if not len(values):
            return float("nan"), (float("nan"), float("nan"))
        return float(values.mean()), self._by_room(outcomes, lambda rows: float(values[rows].mean()))

    def measure(self, outcomes: Sequence[Outcome], row: str, metric: str = "recall") -> np.ndarray:
        return np.array([getattr(o, metric)[row] for o in outcomes])

    def ratio(
        self, outcomes: Sequence[Outcome], row: str, base: str, interval: bool = True
    ) -> tuple[float, tuple[float, float]]:
        """Mean recall@10 of `row` over `base`'s on the same queries, with a paired bootstrap over rooms."""
        mine, theirs = self.measure(outcomes, row), self.measure(outcomes, base)

        def statistic(rows: np.ndarray) -> float:
            return float(mine[rows].sum() / theirs[rows].sum()) if theirs[rows].sum() else float("nan")

        value = statistic(np.arange(len(outcomes)))
        return value, self._by_room(outcomes, statistic) if interval else (float("nan"), float("nan"))

    def bars(self) -> dict[str, tuple[float, tuple[float, float], float, bool]]:
        """Per query kind: the full ranker's ratio over its bar's baseline, interval, target, and whether met."""
        met = {}
        for kind, (base, target) in BARS.items():
            value, interval = self.ratio(self.subset(kind == "warm"), FULL, base)
            met[kind] = (value, interval, target, bool(value >= target))
        return met


@contextmanager
def rooms_home(
    folder: Path, settings: Settings, work: Path, *, limit: int | None = None, progress: bool = True
) -> Iterator[tuple[Engine, list[Room]]]:
    """An engine over the catalog of ikea-rooms' products in a home under `work` (built, or reused), with the
    logits and objects the features need, and the rooms as pin keys. `limit`: only the first N rooms."""
    rows, room_rows = load_rooms(Path(folder))
    room_rows = room_rows[:limit]
    wanted = {pin_id for room in room_rows for pin_id in room["products"]}
    rows = [row for row in rows if row["id"] in wanted]
    if len(room_rows) < 4:
        raise BadArgumentError(f"{folder}: {len(room_rows)} rooms; the evaluation needs at least 4 to split")
    # the features need each product's dominant object, not object search: no sliding windows
    home = evaluation_settings(settings, work / f"ikea-rooms-{len(rows)}").model_copy(update={"object_windows": False})
    with Engine(home) as engine:
        keys = ingest_rows(engine, rows, progress)
        engine.extract(home.backbone, "logits", progress)
        index_objects(engine, progress)
        rooms = [
            Room(str(r["room"]), str(r.get("type") or "Other"), tuple(keys[p] for p in r["products"] if p in keys))
            for r in room_rows
        ]
        yield engine, rooms


def evaluate_related(
    folder: Path,
    settings: Settings,
    work: Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    test_share: float = 0.3,
    draws: int = 1000,
    limit: int | None = None,
    folds: int | None = None,
    progress: bool = True,
) -> RelatedStudy:
    """Build (or reuse) the catalog of ikea-rooms' products in a home under `work`, then run every seed.
    `limit`: only the first N rooms (smoke runs); `folds`: of training boards, to cross-fit over (default FOLDS)."""
    folds = folds or FOLDS
    with rooms_home(folder, settings, work, limit=limit, progress=progress) as (engine, rooms):
        searcher = engine.searcher
        vectors = {name: v.preload() for name, v in visual_vectors(searcher).items()}
        outcomes, choices = [], {}
        for seed in seeds:
            found, choices[seed] = run_seed(
                searcher, rooms, vectors, test_share=test_share, seed=seed, progress=progress, folds=folds
            )
            outcomes += found
        return RelatedStudy(outcomes, tuple(seeds), choices, len(engine.catalog), len(rooms), draws, folds)


def write_related_report(study: RelatedStudy, out: Path | None, command: str) -> str:
    """The Table-4-like tables as markdown (returned), and with `out`: related.md, related.csv and a plot."""
    sections, csv_rows = [], []
    for kind in ("warm", "cold"):
        outcomes = study.subset(kind == "warm")
        candidate_recall, (low, high) = study.mean(outcomes, np.array([o.candidate_recall for o in outcomes]))
        table = []
        for row in ROWS:
            recall, (r_low, r_high) = study.mean(outcomes, study.measure(outcomes, row))
            ndcg, _ = study.mean(outcomes, study.measure(outcomes, row, "ndcg"))
            ratio, (q_low, q_high) = study.ratio(outcomes, row, CONTROL)
            table.append(
                [
                    row,
                    f"{recall:.3f} [{r_low:.3f}, {r_high:.3f}]",
                    f"{ndcg:.3f}",
                    f"{ratio:.2f} [{q_low:.2f}, {q_high:.2f}]",
                ]
            )
            csv_rows += [[kind, row, "recall@10", recall], [kind, row, "ndcg@10", ndcg]]
        csv_rows.append([kind, "any source", "candidate recall", candidate_recall])
        sections.append(
            f"""## {kind.capitalize()} queries ({len(outcomes)} over {len({o.unit for o in outcomes})} test rooms)

Candidate recall (share of a query's room-mates that some source proposes): {candidate_recall:.3f}
[{low:.3f}, {high:.3f}].

{markdown_rows(["row", "recall@10 [95% CI]", "NDCG@10", "recall@10 / control [95% CI]"], table)}
"""
        )
    bar_rows = [
        [
            kind,
            f"{FULL} / {BARS[kind][0]}",
            f"{value:.2f} [{low:.2f}, {high:.2f}]",
            f"≥ {target:.2f}",
            "met" if met else "**missed**",
        ]
        for kind, (value, (low, high), target, met) in study.bars().items()
    ]
    every_row = []
    for row in RANKERS:
        cells = [f"**{row}**" if row == FULL else row]
        for kind, (base, _) in BARS.items():
            outcomes = study.subset(kind == "warm")
            value, (low, high) = study.ratio(outcomes, row, base)
            per_seed = [
                study.ratio([o for o in outcomes if o.seed == seed], row, base, interval=False)[0]
                for seed in study.seeds
            ]
            cells += [f"{value:.2f} [{low:.2f}, {high:.2f}]", " / ".join(f"{v:.2f}" for v in per_seed)]
        every_row.append(cells)
    text = f"""# Related Pins on ikea-rooms: the paper's Table 4 as offline rows

`{command}`

{study.catalog_pins} products, {study.rooms} rooms; seeds {", ".join(map(str, study.seeds))}, each splitting the
rooms into train and test. Everything (graph, categories, rankers) comes from the training rooms; each item of a
test room queries for the room's other items. Warm queries are in some training room, cold ones in none.
Intervals: bootstrap over test rooms (paired for ratios), pooled over seeds. The full ranker is the shipped
default, "{FULL}": a feature set per kind of query, chosen on inner splits of the training rooms
(`benchmarks/related_auto.py`). Row "{AUTO}" chooses instead, for warm and for cold queries, the feature set
(co-occurrence and neighbour boards, + visual, + category cross, + text) and dominant-object variant (none, A, B, C)
on held-out folds of the training boards: the simplest whose ranker finds board-mates within one standard error
(of the shortfall) of the best. Cold queries have no neighbour boards: for them the smallest set is the control's.
Every ranker learns from all training boards, cross-fitted: in each of {study.folds} folds of them (fewer if there
are fewer boards), the fold's boards are the labels and the other folds' make the graph. Rows "variant A/B/C" use
every feature with that variant.

## Bars

{markdown_rows(["queries", "ratio of recall@10", "value [95% CI]", "bar", ""], bar_rows)}

Every ranker against the bars' baselines (pooled [95% CI], then each seed):

{markdown_rows(["ranker", "warm / cooccurrence", "per seed", "cold / popularity", "per seed"], every_row)}

What "{AUTO}" chose on each seed's held-out folds of its training boards (the simplest: co-occurrence and
neighbour-board features, variant none):

{chr(10).join(f"- seed {seed}: {text}" for seed, text in study.choices.items())}

{chr(10).join(sections)}
![recall@10 by row](related-recall.png)
"""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "related.md") as tmp:
            tmp.write_text(text)
        with atomic_path(out / "related.csv") as tmp:
            tmp.write_text(csv_text(["queries", "row", "measure", "value"], csv_rows))
        plot_recall(study, out / "related-recall.png")
    return text


def plot_recall(study: RelatedStudy, path: Path) -> None:
    """recall@10 per row with its interval, warm and cold queries side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, kind in zip(axes, ("warm", "cold"), strict=True):
        outcomes = study.subset(kind == "warm")
        values = [study.mean(outcomes, study.measure(outcomes, row)) for row in ROWS]
        error = np.array([[v - lo, hi - v] for v, (lo, hi) in values]).T
        colours = ["#bbbbbb"] * len(BASELINES) + ["#4c72b0"] * len(RANKERS)
        ax.bar(np.arange(len(ROWS)), [v for v, _ in values], yerr=error, capsize=3, color=colours)
        ax.set_xticks(np.arange(len(ROWS)), ROWS, rotation=40, ha="right", fontsize=8)
        ax.set_title(f"{kind} queries ({len(outcomes)})")
    axes[0].set_ylabel("recall@10 of the room's other items")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
