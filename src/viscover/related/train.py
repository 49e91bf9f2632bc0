"""Learning the Related Pins ranker from boards, with a nested split: a seeded share of the boards gives the
labels (a query's board-mates are the relevant candidates), and the graph that every candidate and count
feature comes from is built from the other boards only. Without it, co-occurrence would be a perfect feature."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from viscover.errors import BadArgumentError, BadManifestError, NotEnoughDataError
from viscover.related.graph import BoardGraph
from viscover.related.ranker import RankSVM
from viscover.related.related import (
    FEATURE_SETS,
    KINDS,
    MODEL_FILE,
    VARIANTS,
    Categories,
    RelatedModel,
    RelatedPins,
    VisualVectors,
    feature_names,
)
from viscover.search import Engine, Searcher

MIN_QUERIES = 20  # training queries a kind (warm, cold) needs for its own ranker; fewer teach noise


@dataclass(frozen=True)
class TrainReport:
    queries: int  # training queries (pins of label boards)
    rows: int  # candidate rows they gave
    label_boards: int
    feature_boards: int
    dominant_queries: int  # queries with a dominant object (0 until `viscover objects` has run)
    seconds: float


@dataclass(frozen=True)
class NestedSplit:
    """Label boards (their saves say which candidates are relevant) and the graph of every other board, which
    candidates and count features come from while training."""

    label_boards: set[int]
    label_pins: np.ndarray
    label_board_of: np.ndarray  # parallel to label_pins
    feature_graph: BoardGraph


def nested_split(pins: np.ndarray, boards: np.ndarray, label_share: float, seed: int) -> NestedSplit:
    """A seeded share of the distinct boards becomes labels; the rest make the feature graph."""
    pins, boards = np.asarray(pins, dtype=np.int64), np.asarray(boards, dtype=np.int64)
    distinct = np.unique(boards)
    count = max(1, round(label_share * len(distinct)))
    labels = set(np.random.default_rng(seed).permutation(distinct)[:count].tolist())
    is_label = np.isin(boards, list(labels))
    return NestedSplit(labels, pins[is_label], boards[is_label], BoardGraph(pins[~is_label], boards[~is_label]))


def train_model(
    searcher: Searcher,
    pins: np.ndarray,
    boards: np.ndarray,
    *,
    feature_set: str,
    variant: str,
    board_types: Mapping[int, str] | None = None,
    vectors: Mapping[str, VisualVectors] | None = None,
    label_share: float = 0.3,
    max_queries: int = 1500,
    seed: int = 0,
    progress: bool = True,
) -> tuple[RelatedModel, TrainReport]:
    """Learn a ranker per kind of query from saves of `pins` to `boards` (the catalog's, or an evaluation's
    training boards), on `feature_set`, or with `auto` on the set each kind does best with on a dev split of
    the label boards. Categories come from `board_types` (board id → type) when given, else from the pins'
    own categories."""
    check_choice(feature_set, variant)
    start = time.perf_counter()
    split = nested_split(pins, boards, label_share, seed)
    feature_graph = split.feature_graph
    if board_types:
        categories = Categories.from_board_types(board_types)
    else:
        categories = Categories.from_pin_categories(list(searcher.catalog.categories().values()))
    choices = FEATURE_SETS if feature_set == "auto" else (feature_set,)
    names = feature_names(choices[-1], categories)  # each set's features come first in the next one's
    related = RelatedPins(searcher, lambda: feature_graph, None, vectors)
    queries = _label_queries(split.label_pins, split.label_board_of, max_queries, seed)
    catalog_pins = searcher.catalog.by_keys(sorted({query.key for query in queries}))
    rows: dict[str, list[QueryRows]] = {kind: [] for kind in KINDS}
    dominant_queries = 0
    for query in tqdm(queries, desc="related: training queries", disable=not progress):
        pin = catalog_pins.get(query.key)
        if pin is None:
            continue
        candidates = related.candidates(pin, feature_graph)
        X, dominant = related.features(pin, candidates, feature_graph, names, categories, variant)
        dominant_queries += dominant
        kind = "warm" if feature_graph.degree(query.key) > 0 else "cold"
        rows[kind].append(QueryRows(query, X, np.isin(candidates.keys, list(query.mates)).astype(int)))
    rankers, chosen, teaching = {}, {}, {}
    for kind, found in rows.items():
        teaching[kind] = [rows for rows in found if rows.y.any() and not rows.y.all()]  # can teach an order
        if len(teaching[kind]) >= MIN_QUERIES:
            chosen[kind] = _best_on_dev(teaching[kind], choices, categories, seed)
            rankers[kind] = _fit(teaching[kind], len(feature_names(chosen[kind], categories)), seed)
    if not rankers:
        counts = ", ".join(f"{len(found)} {kind}" for kind, found in teaching.items())
        raise NotEnoughDataError(
            f"too few boards to learn from: {counts} queries have board-mates among their candidates, and a ranker "
            f"needs {MIN_QUERIES}; save more pins to boards (without a ranker, related pins come by shared boards)"
        )
    every = [rows for found in rows.values() for rows in found]
    report = TrainReport(
        len(every),
        sum(len(rows.y) for rows in every),
        len(split.label_boards),
        feature_graph.boards,
        dominant_queries,
        time.perf_counter() - start,
    )
    return RelatedModel(chosen, variant, categories, rankers), report


@dataclass(frozen=True)
class LabelQuery:
    key: int  # the query pin
    board: int  # the label board it is on
    mates: frozenset[int]  # its other pins


@dataclass(frozen=True)
class QueryRows:
    """One training query's candidates: their features (every column training may use) and relevance."""

    query: LabelQuery
    X: np.ndarray
    y: np.ndarray


def _fit(found: list[QueryRows], columns: int, seed: int) -> RankSVM:
    """A ranker on the first `columns` features of these queries' candidates."""
    X = np.concatenate([rows.X[:, :columns] for rows in found])
    groups = np.concatenate([np.full(len(rows.y), n) for n, rows in enumerate(found)])
    return RankSVM(seed=seed).fit(X, np.concatenate([rows.y for rows in found]), groups)


def _best_on_dev(found: list[QueryRows], choices: tuple[str, ...], categories: Categories, seed: int) -> str:
    """The feature set whose ranker, fitted on some label boards, finds the most board-mates in the top 10 of
    queries from the other label boards (a seeded quarter of them); ties go to the smaller set."""
    if len(choices) == 1:
        return choices[0]
    boards = sorted({rows.query.board for rows in found})
    dev_boards = set(np.random.default_rng(seed).permutation(boards)[: max(1, len(boards) // 4)].tolist())
    fit = [rows for rows in found if rows.query.board not in dev_boards]
    dev = [rows for rows in found if rows.query.board in dev_boards]
    if len(fit) < MIN_QUERIES or not dev:
        return choices[-1]
    recall = {}
    for choice in choices:
        columns = len(feature_names(choice, categories))
        ranker = _fit(fit, columns, seed)
        recall[choice] = np.mean(
            [
                rows.y[np.argsort(-ranker.decision_function(rows.X[:, :columns]), kind="stable")[:10]].sum()
                / len(rows.query.mates)
                for rows in dev
            ]
        )
    return max(choices, key=lambda choice: (recall[choice], -choices.index(choice)))


def _label_queries(pins: np.ndarray, boards: np.ndarray, most: int, seed: int) -> list[LabelQuery]:
    """Every pin of every label board with two pins or more, with its board-mates; a seeded sample of `most`
    when there are more."""
    members: dict[int, set[int]] = {}
    for pin, board in zip(pins.tolist(), boards.tolist(), strict=True):
        members.setdefault(board, set()).add(pin)
    queries = [
        LabelQuery(pin, board, frozenset(group - {pin}))
        for board, group in sorted(members.items())
        if len(group) > 1
        for pin in sorted(group)
    ]
    if len(queries) > most:
        picked = np.random.default_rng(seed).choice(len(queries), most, replace=False)
        queries = [queries[i] for i in sorted(picked)]
    return queries


def check_choice(feature_set: str, variant: str) -> None:
    """Refuse an unknown feature set or variant before any work."""
    if feature_set not in (*FEATURE_SETS, "auto"):
        raise BadArgumentError(f"unknown feature set {feature_set!r}; choose auto or one of {', '.join(FEATURE_SETS)}")
    if variant not in VARIANTS:
        raise BadArgumentError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def read_board_types(path: Path, board_ids: Mapping[str, int]) -> dict[int, str]:
    """Board id → type from a JSON-lines file of {"board" (or "room"): name, "type": kind}; boards the catalog
    does not have are skipped, an empty type becomes "Other"."""
    types = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadManifestError(f"cannot read board types from {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name = row.get("board", row.get("room"))
        except (json.JSONDecodeError, AttributeError):
            raise BadManifestError(f"{path}:{number}: not a JSON object") from None
        if not isinstance(name, str):
            raise BadManifestError(f'{path}:{number}: needs a "board" (or "room") name')
        if name in board_ids:
            types[board_ids[name]] = str(row.get("type") or "Other")
    if not types:
        raise BadManifestError(f"{path}: none of its {len(lines)} lines names a board of this catalog")
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
    feature_set, variant = feature_set or settings.related_features, variant or settings.related_variant
    check_choice(feature_set, variant)
    with engine.writing():
        engine.extract(settings.backbone, "logits", progress)
        searcher = engine.searcher
        _, pins, boards = searcher.catalog.board_saves(0)
        types = read_board_types(board_types, searcher.catalog.board_ids()) if board_types else None
        model, report = train_model(
            searcher,
            pins,
            boards,
            feature_set=feature_set,
            variant=variant,
            board_types=types,
            progress=progress,
        )
        return model.save(settings.home / MODEL_FILE), model, report
