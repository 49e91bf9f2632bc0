"""Learning the Related Pins ranker from boards, cross-fitted: the boards are dealt into folds, and each fold's
boards give labels (a query's board-mates are the relevant candidates) while the graph that every candidate and
count feature comes from is built from the other folds' boards only. Without it, co-occurrence would be a perfect
feature; with each fold taking its turn, every board of two pins or more gives labels (up to MAX_QUERIES
queries, a seeded sample beyond), on a graph nearly as dense as the one served."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from viscover.errors import BadArgumentError, BadManifestError, NotEnoughDataError
from viscover.ingest import Pin
from viscover.ingest.sources import read_json_objects
from viscover.related.graph import BoardGraph
from viscover.related.ranker import RankSVM
from viscover.related.related import (
    AUTO_SETS,
    FEATURE_SETS,
    KINDS,
    MODEL_FILE,
    ON_OBJECT,
    VARIANTS,
    Categories,
    RelatedModel,
    RelatedPins,
    VisualVectors,
    feature_names,
    score_parts,
)
from viscover.search import Engine, Searcher

# folds of boards: each gives labels to a graph of the others. Many, so that graph holds 95% of the boards and its
# counts look like the served graph's (20 folds found 2.8% more room-mates than 5 folds, whose graphs held 80%:
# benchmarks/related_folds.py). The graphs are held at once: about 17 MiB each per million saves.
FOLDS = 20
HELD_OUT_GROUPS = 5  # groups of folds that `auto` holds out in turn to compare choices (each costs a fit per choice)
MIN_QUERIES = 20  # training queries a kind (warm, cold) needs for its own ranker; fewer teach noise
MAX_QUERIES = 2000  # training queries at most (a seeded sample of them on a bigger catalog): time grows with them


@dataclass(frozen=True)
class TrainReport:
    queries: int  # training queries (pins of boards with other pins)
    rows: int  # candidate rows they gave
    boards: int  # boards dealt into the folds (each gives labels in one, if it has two pins or more)
    folds: int
    dominant_queries: int  # queries with a dominant object (0 until `viscover objects` has run)
    seconds: float
    # kind → (feature set, variant) → mean recall@10 on held-out folds (when `auto` chose either)
    dev_recall: dict[str, dict[tuple[str, str], float]]
    # kind → (feature set, variant) → one standard error of its shortfall from the best choice's recall
    dev_error: dict[str, dict[tuple[str, str], float]]


@dataclass(frozen=True)
class NestedSplit:
    """Label boards (their saves say which candidates are relevant) and the graph of every other board, which
    candidates and count features come from while training."""

    label_boards: set[int]
    label_pins: np.ndarray
    label_board_of: np.ndarray  # parallel to label_pins
    feature_graph: BoardGraph


def board_folds(pins: np.ndarray, boards: np.ndarray, folds: int, seed: int) -> list[NestedSplit]:
    """The distinct boards dealt into `folds` seeded folds; each fold's boards are labels to a graph of the rest."""
    pins, boards = np.asarray(pins, dtype=np.int64), np.asarray(boards, dtype=np.int64)
    dealt = np.random.default_rng(seed).permutation(np.unique(boards))
    splits = []
    for fold in range(min(folds, len(dealt))):
        labels = set(dealt[fold::folds].tolist())
        is_label = np.isin(boards, list(labels))
        feature_graph = BoardGraph(pins[~is_label], boards[~is_label])
        splits.append(NestedSplit(labels, pins[is_label], boards[is_label], feature_graph))
    return splits


@dataclass(frozen=True)
class LabelQuery:
    """A training query: a pin of a label board, whose other pins there are what it should find."""

    key: int  # the query pin
    board: int  # the label board it is on
    mates: frozenset[int]  # its other pins
    fold: int  # the fold of that board: the query's features come from the graph of the other folds

    @property
    def held_out_group(self) -> int:
        """The group of folds whose queries `auto` holds out together (fold modulo HELD_OUT_GROUPS)."""
        return self.fold % HELD_OUT_GROUPS


@dataclass(frozen=True)
class QueryRows:
    """One training query's candidates: their features (every column training may use) and relevance."""

    query: LabelQuery
    X: np.ndarray
    X_object: np.ndarray  # the same, pooled similarity on the query's dominant object (X when it has none)
    y: np.ndarray
    dominant: bool  # the query has a dominant object (variants B and C weigh visual features more then)

    @classmethod
    def of(
        cls,
        related: RelatedPins,
        pin: Pin,
        query: LabelQuery,
        graph: BoardGraph,
        names: Sequence[str],
        categories: Categories,
    ) -> QueryRows:
        """The query's candidates from `graph` and their features `names`, also as variants A and B compute them
        (on its dominant object)."""
        candidates = related.candidates(pin, graph)
        X, dominant = related.features(pin, candidates, graph, names, categories)
        X_object = X
        if dominant and "visual pool" in names:
            # A and B compute the same features (B only weighs them differently when scoring)
            X_object = related.features(pin, candidates, graph, names, categories, "A")[0]
        return cls(query, X, X_object, np.isin(candidates.keys, list(query.mates)).astype(int), dominant)

    def rows(self, variant: str) -> np.ndarray:
        """The features the variant ranks by."""
        return self.X_object if variant in ON_OBJECT else self.X

    @property
    def can_teach(self) -> bool:
        """Some candidates are board-mates and some are not: only such a query gives the ranker pairs."""
        return bool(self.y.any() and not self.y.all())


@dataclass(frozen=True)
class TrainingRows:
    """Every training query's candidates and features by kind (warm, cold): the costly part of training, which
    every choice of feature set and variant then fits from."""

    by_kind: dict[str, list[QueryRows]]
    categories: Categories
    text_words: int  # how many rare words made the text candidates
    boards: int
    folds: int
    seconds: float


def training_rows(
    searcher: Searcher,
    pins: np.ndarray,
    boards: np.ndarray,
    *,
    board_types: Mapping[int, str] | None = None,
    vectors: Mapping[str, VisualVectors] | None = None,
    max_queries: int = MAX_QUERIES,
    folds: int = FOLDS,
    seed: int = 0,
    progress: bool = True,
) -> TrainingRows:
    """Candidates and every feature for each pin of each board with other pins, from saves of `pins` to `boards`
    (the catalog's, or an evaluation's training boards), cross-fitted over `folds` folds of the boards; a seeded
    sample of `max_queries` of them when there are more. Categories come from `board_types` (board id → type) when
    given, else from the pins' own categories."""
    start = time.perf_counter()
    splits = board_folds(pins, boards, folds, seed)
    if board_types:
        categories = Categories.from_board_types(board_types)
    else:
        categories = Categories.from_pin_categories(list(searcher.catalog.categories().values()))
    names = feature_names(FEATURE_SETS[-1], categories)  # each set's features come first in the next one's
    # candidates and features are asked of each query's fold graph; the served graph is empty, so none can leak
    related = RelatedPins(searcher, BoardGraph, None, vectors)
    queries = _label_queries(splits, max_queries, seed)
    catalog_pins = searcher.catalog.by_keys(sorted({query.key for query in queries}))
    rows: dict[str, list[QueryRows]] = {kind: [] for kind in KINDS}
    for query in tqdm(queries, desc="related: training queries", disable=not progress):
        pin = catalog_pins.get(query.key)
        if pin is None:
            continue
        graph = splits[query.fold].feature_graph
        rows["warm" if graph.degree(query.key) > 0 else "cold"].append(
            QueryRows.of(related, pin, query, graph, names, categories)
        )
    boards_used = sum(len(split.label_boards) for split in splits)
    return TrainingRows(
        rows, categories, searcher.settings.related_text_words, boards_used, len(splits), time.perf_counter() - start
    )


def fit_model(
    rows: TrainingRows, feature_set: str | Mapping[str, str], variant: str, seed: int = 0, threads: int = 1
) -> tuple[RelatedModel, TrainReport]:
    """A ranker per kind of query on `feature_set` (one for every kind, or kind → set) with `variant`; `auto` for
    either picks, per kind, the simplest choice that does as well as the best on held-out folds
    (`within_one_standard_error`), comparing on `threads` threads."""
    by_kind = check_choice(feature_set, variant)
    start = time.perf_counter()
    variants = VARIANTS if variant == "auto" else (variant,)
    # the sets without visual features rank alike under every variant (none has a visual feature to move): offered
    # once. The order says which is simpler: the smaller set, then the earlier variant (none, A, B, C).
    plain = {set_ for set_ in FEATURE_SETS if "visual pool" not in feature_names(set_, rows.categories)}
    rankers, chosen, dev_recall, dev_error = {}, {}, {}, {}
    for kind, found in rows.by_kind.items():
        teaching = [query_rows for query_rows in found if query_rows.can_teach]
        if len(teaching) < MIN_QUERIES:
            continue
        feature_sets = AUTO_SETS if by_kind[kind] == "auto" else (by_kind[kind],)
        choices = [(f, way) for f in feature_sets for way in variants if f not in plain or way == variants[0]]
        recall, boards = _dev_recall(found, choices, rows.categories, seed, threads)
        chosen[kind] = choices[0]
        if recall:
            chosen[kind], dev_error[kind] = within_one_standard_error(recall, boards)
            dev_recall[kind] = {choice: float(values.mean()) for choice, values in recall.items()}
        features, way = chosen[kind]
        rankers[kind] = _fit(teaching, len(feature_names(features, rows.categories)), way, seed)
    if not rankers:
        counts = ", ".join(
            f"{sum(query_rows.can_teach for query_rows in found)} {kind}" for kind, found in rows.by_kind.items()
        )
        raise NotEnoughDataError(
            f"too few boards to learn from: {counts} queries have board-mates among their candidates, and a ranker "
            f"needs {MIN_QUERIES}; save more pins to boards (without a ranker, related pins come by shared boards)"
        )
    every = [query_rows for found in rows.by_kind.values() for query_rows in found]
    report = TrainReport(
        len(every),
        sum(len(query_rows.y) for query_rows in every),
        rows.boards,
        rows.folds,
        sum(query_rows.dominant for query_rows in every),
        rows.seconds + time.perf_counter() - start,
        dev_recall,
        dev_error,
    )
    feature_choice = {kind: features for kind, (features, _) in chosen.items()}
    variant_choice = {kind: way for kind, (_, way) in chosen.items()}
    return RelatedModel(feature_choice, variant_choice, rows.categories, rankers, rows.text_words), report


def train_model(
    searcher: Searcher,
    pins: np.ndarray,
    boards: np.ndarray,
    *,
    feature_set: str | Mapping[str, str],
    variant: str,
    board_types: Mapping[int, str] | None = None,
    vectors: Mapping[str, VisualVectors] | None = None,
    max_queries: int = MAX_QUERIES,
    seed: int = 0,
    progress: bool = True,
) -> tuple[RelatedModel, TrainReport]:
    """`training_rows`, then `fit_model` (an unknown feature set or variant is refused before any work)."""
    check_choice(feature_set, variant)
    rows = training_rows(
        searcher,
        pins,
        boards,
        board_types=board_types,
        vectors=vectors,
        max_queries=max_queries,
        seed=seed,
        progress=progress,
    )
    return fit_model(rows, feature_set, variant, seed, searcher.settings.threads)


def _fit(found: list[QueryRows], columns: int, variant: str, seed: int) -> RankSVM:
    """A ranker on the first `columns` features (as the variant computes them) of these queries' candidates."""
    X = np.concatenate([query_rows.rows(variant)[:, :columns] for query_rows in found])
    groups = np.concatenate([np.full(len(query_rows.y), n) for n, query_rows in enumerate(found)])
    return RankSVM(seed=seed).fit(X, np.concatenate([query_rows.y for query_rows in found]), groups)


def within_one_standard_error(
    recall: dict[tuple[str, str], np.ndarray], boards: np.ndarray
) -> tuple[tuple[str, str], dict[tuple[str, str], float]]:
    """The first (simplest) choice whose mean held-out recall falls short of the best's by no more than one
    standard error of that shortfall (the "one standard error rule" of cross-validation: a richer choice must
    win by more than the noise), and each choice's error. Every choice ranks the same queries, so the error is
    that of the per-query differences; queries of one board are not independent, so it is clustered by board
    (`boards`: each query's)."""
    best = max(recall.values(), key=np.mean)
    error = {choice: clustered_error(best - values, boards) for choice, values in recall.items()}
    chosen = next(choice for choice, values in recall.items() if best.mean() - values.mean() <= error[choice])
    return chosen, error


def clustered_error(values: np.ndarray, clusters: np.ndarray) -> float:
    """The standard error of the mean of `values` when the values of one cluster move together: the residuals
    summed per cluster (the sandwich estimator, with the small-sample factor); 0 with fewer than 2 clusters."""
    labels, index = np.unique(clusters, return_inverse=True)
    if len(labels) < 2:
        return 0.0
    sums = np.bincount(index, weights=values - values.mean())
    return float(np.sqrt((sums**2).sum() * len(labels) / (len(labels) - 1)) / len(values))


def held_out_splits(found: Sequence[QueryRows]) -> list[tuple[list[int], list[int]]]:
    """Per held-out group of folds, in order: its queries, and the other groups' queries that can teach (positions
    in `found`)."""
    splits = []
    for group in sorted({query_rows.query.held_out_group for query_rows in found}):
        held = [query_rows.query.held_out_group == group for query_rows in found]
        dev = [n for n, is_held in enumerate(held) if is_held]
        splits.append((dev, [n for n, is_held in enumerate(held) if not is_held and found[n].can_teach]))
    return splits


def _dev_recall(
    found: list[QueryRows], choices: list[tuple[str, str]], categories: Categories, seed: int, threads: int = 1
) -> tuple[dict[tuple[str, str], np.ndarray], np.ndarray]:
    """Each (feature set, variant)'s recall@10 of board-mates for every held-out query, in one order: each group of
    folds' queries are ranked as serving ranks them by a ranker fitted on the other groups' queries that can teach.
    Every query counts (a mate no source proposes is missed), so the recall compares across candidate settings too.
    Empty when there is one choice, or too few queries to fit. Also each held-out query's board, in that order.
    The groups run on `threads` threads (liblinear lets go of the GIL while it fits); the result is the same, as
    the primal solver that `dual='auto'` takes whenever pairs outnumber features draws no random numbers."""
    if len(choices) == 1:
        return {}, np.array([])

    def held_out(split: tuple[list[int], list[int]]) -> tuple[list[int], dict[tuple[str, str], list[float]]]:
        dev, fit = ([found[n] for n in rows] for rows in split)
        if len(fit) < MIN_QUERIES:
            return [], {}
        rankers: dict[tuple[str, bool], RankSVM] = {}  # variants that compute the same features share one
        recall: dict[tuple[str, str], list[float]] = {choice: [] for choice in choices}
        for features, variant in choices:
            names = feature_names(features, categories)
            shared = (features, variant in ON_OBJECT)
            if shared not in rankers:
                rankers[shared] = _fit(fit, len(names), variant, seed)
            for query_rows in dev:
                X = query_rows.rows(variant)[:, : len(names)]
                score = score_parts(rankers[shared], X, names, query_rows.dominant, variant).sum(1)
                top = np.argsort(-score, kind="stable")[:10]
                recall[features, variant].append(query_rows.y[top].sum() / len(query_rows.query.mates))
        return [query_rows.query.board for query_rows in dev], recall

    boards: list[int] = []
    recall: dict[tuple[str, str], list[float]] = {choice: [] for choice in choices}
    with ThreadPoolExecutor(threads) as pool:
        for group_boards, group_recall in pool.map(held_out, held_out_splits(found)):
            boards += group_boards
            for choice, values in group_recall.items():
                recall[choice] += values
    return {choice: np.array(values) for choice, values in recall.items() if values}, np.array(boards)


def _label_queries(splits: Sequence[NestedSplit], most: int, seed: int) -> list[LabelQuery]:
    """Every pin of every label board with two pins or more, with its board-mates and fold; a seeded sample of
    `most` when there are more."""
    queries = []
    for fold, split in enumerate(splits):
        members: dict[int, set[int]] = {}
        for pin, board in zip(split.label_pins.tolist(), split.label_board_of.tolist(), strict=True):
            members.setdefault(board, set()).add(pin)
        queries += [
            LabelQuery(pin, board, frozenset(group - {pin}), fold)
            for board, group in sorted(members.items())
            if len(group) > 1
            for pin in sorted(group)
        ]
    if len(queries) > most:
        picked = np.random.default_rng(seed).choice(len(queries), most, replace=False)
        queries = [queries[i] for i in sorted(picked)]
    return queries


def check_choice(feature_set: str | Mapping[str, str], variant: str) -> dict[str, str]:
    """Each kind of query's feature set, from one set for every kind or a mapping kind → set; an unknown feature
    set or variant, or a mapping that misses a kind, is refused before any work."""
    by_kind = dict.fromkeys(KINDS, feature_set) if isinstance(feature_set, str) else dict(feature_set)
    if set(by_kind) != set(KINDS):
        raise BadArgumentError(
            f"give a feature set for each kind of query ({', '.join(KINDS)}), not for {sorted(by_kind)}"
        )
    for one in by_kind.values():
        if one not in (*FEATURE_SETS, "auto"):
            raise BadArgumentError(f"unknown feature set {one!r}; choose auto or one of {', '.join(FEATURE_SETS)}")
    if variant not in (*VARIANTS, "auto"):
        raise BadArgumentError(f"unknown variant {variant!r}; choose auto or one of {', '.join(VARIANTS)}")
    return by_kind


def read_board_types(path: Path, board_ids: Mapping[str, int]) -> dict[int, str]:
    """Board id → type from a JSON-lines file of {"board" (or "room"): name, "type": kind}; boards the catalog
    does not have are skipped, an empty type becomes "Other"."""
    types = {}
    rows = read_json_objects(path, "board types")
    for number, row in enumerate(rows, 1):
        name = row.get("board", row.get("room"))
        if not isinstance(name, str):
            raise BadManifestError(f'{path}: object {number} needs a "board" (or "room") name')
        if name in board_ids:
            types[board_ids[name]] = str(row.get("type") or "Other")
    if not types:
        raise BadManifestError(f"{path}: none of its {len(rows)} lines names a board of this catalog")
    return types


def train_home(
    engine: Engine,
    *,
    board_types: Path | None = None,
    feature_set: str | None = None,
    variant: str | None = None,
    progress: bool = True,
) -> tuple[Path, RelatedModel, TrainReport]:
    """`viscover related train`: store the logits the visual features need, learn from every board of the
    catalog, and save the model where the searcher and the server load it."""
    settings = engine.settings
    variant = variant or settings.related_variant
    chosen = check_choice(feature_set or settings.related_feature_sets, variant)
    with engine.writing():
        if not engine.searcher.catalog.board_saves_digest()[0]:
            raise NotEnoughDataError("no pin is saved to a board: ingest a manifest with boards first")
        engine.extract(settings.backbone, "logits", progress)
        searcher = engine.searcher
        _, pins, boards = searcher.catalog.board_saves(0)
        types = read_board_types(board_types, searcher.catalog.board_ids()) if board_types else None
        model, report = train_model(
            searcher, pins, boards, feature_set=chosen, variant=variant, board_types=types, progress=progress
        )
        return model.save(settings.home / MODEL_FILE), model, report
