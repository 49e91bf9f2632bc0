"""Related Pins (section 6 of the paper): for a pin, the pins people saved to the same boards, re-ranked by a
learned Rank-SVM so that visual similarity counts where it helps (Table 4).

Candidates come from five sources: board co-occurrence, a random walk over the pin-board graph, the boards of
the pin's text neighbours (pins of its product line are on boards it is not), visual neighbours and text
neighbours (a pin on no board has only the last two). Each candidate gets features: its source scores, its
visual similarity to the query under two layers of the backbone (pooled features and
logits, our fc6 and fc8), the query's coarse category vector times that similarity (the paper's category
cross features), its text score, and, in the paper's variants, the query's dominant visual object: A computes
the query's visual features on that object's box, B does too and weighs visual similarity five times, C only
weighs it five times. Queries on some board (warm) and on none (cold) have a ranker each. A candidate's
popularity (its board count) is a feature too: for a cold query it is the only graph score there is.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viscover.errors import BadArgumentError, BadSettingError
from viscover.features.registry import parse_model_key
from viscover.ingest import Pin
from viscover.ingest.catalog import ObjectRun
from viscover.ingest.text import words
from viscover.related.graph import BoardGraph, Scores, best_first, normalized
from viscover.related.ranker import RankSVM
from viscover.search import PinQuery, Searcher, relative_scores
from viscover.search.results import unit_vectors
from viscover.storage import atomic_path

SOURCES = ("cooccurrence", "walk", "neighbour boards", "visual", "text")
# candidates each source proposes at most
DEPTH = {"cooccurrence": 200, "walk": 200, "neighbour boards": 50, "visual": 60, "text": 100}
WALK_STEPS = 10_000  # moves of a candidate walk (it stops earlier once DEPTH["walk"] pins have 4 visits)
# each adds its features to the ones before: the paper's control, then the boards of the query's text neighbours,
# visual similarity, the category cross features, and text similarity
FEATURE_SETS = ("cooccurrence", "neighbours", "visual", "category", "text")
# what `auto` chooses among: the neighbours' boards are a graph source like the walk, so its smallest set has them
# (the paper's control, co-occurrence features alone, stays a choice to compare with)
AUTO_SETS = FEATURE_SETS[1:]
KINDS = ("warm", "cold")  # queries on some board, and on none: each kind has its own ranker
VARIANTS = ("none", "A", "B", "C")
ON_OBJECT = ("A", "B")  # variants that compute the query's pooled similarity on its dominant object's box
BOOSTED = ("B", "C")  # variants that weigh visual similarity more for a query with a dominant object
VISUAL_BOOST = 5.0  # variants B and C: how much more visual similarity weighs for a dominant-object query
MAX_CATEGORIES = 32  # the paper's 32 site-wide categories
MODEL_FILE = "related/ranker.npz"
MODEL_VERSION = 6
GRAPH_FEATURES = (
    "cooccurrence",
    "jaccard",
    "lift",
    "walk",
    "popularity",
    "from cooccurrence",
    "from walk",
    "from visual",
)
NEIGHBOUR_FEATURES = ("neighbour boards", "from neighbour boards")
VISUAL_FEATURES = ("visual pool", "visual logits")
TEXT_FEATURES = ("text", "from text")
# a pin's text candidates match its rarest description words (`related_text_words` of them) that are in at most
# this share of pins (or this many)
TEXT_COMMON_SHARE, TEXT_MIN_COMMON = 0.01, 100


@dataclass(frozen=True)
class Categories:
    """Coarse categories. A pin's vector is the share of its boards in each category when boards have types
    (IKEA's room types; Pinterest derives categories from boards), else a one-hot of its own category."""

    names: tuple[str, ...] = ()
    board_category: Mapping[int, int] = field(default_factory=dict)  # board id → category index
    by_pin_category: bool = False

    @classmethod
    def from_board_types(cls, board_types: Mapping[int, str]) -> Categories:
        names = tuple(sorted(set(board_types.values())))
        return cls(names, {board: names.index(kind) for board, kind in board_types.items()})

    @classmethod
    def from_pin_categories(cls, categories: Sequence[str | None]) -> Categories:
        common = Counter(c for c in categories if c).most_common(MAX_CATEGORIES)
        return cls(tuple(name for name, _ in common), by_pin_category=True)

    def vector(self, pin: Pin, graph: BoardGraph) -> np.ndarray:
        vector = np.zeros(len(self.names))
        if self.by_pin_category:
            if pin.category in self.names:
                vector[self.names.index(pin.category)] = 1.0
            return vector
        kinds = [self.board_category[b] for b in graph.boards_of(pin.key).tolist() if b in self.board_category]
        np.add.at(vector, kinds, 1.0)
        return vector / max(1, len(kinds))


def feature_names(feature_set: str, categories: Categories) -> tuple[str, ...]:
    if feature_set not in FEATURE_SETS:
        raise BadArgumentError(f"unknown feature set {feature_set!r}; choose one of {', '.join(FEATURE_SETS)}")
    added = (
        NEIGHBOUR_FEATURES,
        VISUAL_FEATURES,
        tuple(f"category {name} x visual" for name in categories.names),
        TEXT_FEATURES,
    )
    return GRAPH_FEATURES + sum(added[: FEATURE_SETS.index(feature_set)], ())


@dataclass
class RelatedModel:
    """What `viscover related train` learns and saves: per kind of query (warm: on some board; cold: on none, so
    only visual and text candidates exist) a feature set, a variant and a ranker; the categories; and how many
    rare words made the text candidates it learned from (serving asks the same)."""

    feature_sets: dict[str, str]  # kind → feature set
    variants: dict[str, str]  # kind → dominant-object variant
    categories: Categories
    rankers: dict[str, RankSVM]
    text_words: int

    def for_query(self, warm: bool) -> tuple[tuple[str, ...], str, RankSVM] | None:
        """The features, variant and ranker for a warm or cold query; None when training had too few of its
        kind (a ranker learned on the other kind would weigh features that kind never had)."""
        kind = "warm" if warm else "cold"
        if kind not in self.rankers:
            return None
        return feature_names(self.feature_sets[kind], self.categories), self.variants[kind], self.rankers[kind]

    def describe(self) -> str:
        """Each query kind's feature set and variant (or unranked)."""
        return ", ".join(
            f"{kind} {self.feature_sets[kind]} (variant {self.variants[kind]})"
            if kind in self.rankers
            else f"{kind} unranked"
            for kind in KINDS
        )

    def save(self, path: Path) -> Path:
        meta = {
            "version": MODEL_VERSION,
            "feature_sets": self.feature_sets,
            "variants": self.variants,
            "categories": list(self.categories.names),
            "board_category": {str(b): c for b, c in self.categories.board_category.items()},
            "by_pin_category": self.categories.by_pin_category,
            "text_words": self.text_words,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            arrays = {f"{kind}.{name}": a for kind, r in self.rankers.items() for name, a in r.to_arrays().items()}
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> RelatedModel:
        try:
            with np.load(path) as saved:
                meta = json.loads(str(saved["meta"]))
                if meta.get("version") != MODEL_VERSION:
                    raise ValueError(f"version {meta.get('version')!r}, this viscover reads {MODEL_VERSION}")
                rankers = {
                    kind: RankSVM.from_arrays({name: saved[f"{kind}.{name}"] for name in RankSVM.ARRAYS})
                    for kind in KINDS
                    if f"{kind}.coef" in saved
                }
                if not rankers:
                    raise ValueError("no ranker in it")
            categories = Categories(
                tuple(meta["categories"]),
                {int(b): c for b, c in meta["board_category"].items()},
                meta["by_pin_category"],
            )
            model = cls(
                dict(meta["feature_sets"]), dict(meta["variants"]), categories, rankers, int(meta["text_words"])
            )
            for kind, ranker in rankers.items():
                if len(ranker.coef_) != len(feature_names(model.feature_sets[kind], categories)):
                    raise ValueError(f"its {kind} ranker has {len(ranker.coef_)} weights for other features")
                if model.variants[kind] not in VARIANTS:
                    raise ValueError(f"unknown variant {model.variants[kind]!r}")
            return model
        except (OSError, ValueError, KeyError, TypeError, BadArgumentError) as exc:
            raise BadSettingError(
                f"{path} holds no Related Pins model this viscover can read ({exc}): run `viscover related train`"
            ) from None


@dataclass(frozen=True)
class Candidates:
    """A query's candidate pins and each source's scores for them (absent: the source did not propose it)."""

    keys: np.ndarray
    # "cooccurrence" (shared boards), "walk", "neighbour boards", "visual" (similarity), "text"
    scores: dict[str, dict[int, float]]
    # every candidate's weight on the boards of the query's text neighbours (the source proposes the top ones)
    neighbour_boards: dict[int, float] = field(default_factory=dict)

    def proposed_by(self, key: int) -> tuple[str, ...]:
        return tuple(source for source in SOURCES if key in self.scores[source])

    def ranking(self, source: str) -> list[int]:
        """The pins one source proposed, best first."""
        scores = self.scores[source]
        keys = np.fromiter(scores, dtype=np.int64, count=len(scores))
        return best_first(keys, np.fromiter(scores.values(), dtype=np.float64, count=len(scores))).keys.tolist()


@dataclass(frozen=True)
class RelatedHit:
    rank: int
    pin: Pin
    score: float
    sources: tuple[str, ...]  # the candidate sources that proposed it
    contributions: dict[str, float]  # each feature's part of the score (empty without a trained model)


class VisualVectors:
    """Stored feature vectors of one feature space, L2-normalised, read from the catalog as needed (or all at
    once with `preload`, for evaluations on small catalogs)."""

    def __init__(self, searcher: Searcher, model: str) -> None:
        self.searcher, self.model = searcher, model
        self._all: dict[int, np.ndarray] | None = None

    def preload(self) -> VisualVectors:
        keys, vectors = self.searcher.catalog.features(self.model)
        self._all = dict(zip(keys.tolist(), unit_vectors(vectors, "l2"), strict=True))
        return self

    def rows(self, keys: Sequence[int]) -> np.ndarray:
        """Unit vectors of the pins, in order; zeros for pins without one."""
        if self._all is None:
            found_keys, vectors = self.searcher.catalog.features(self.model, keys)
            found = dict(zip(found_keys.tolist(), unit_vectors(vectors, "l2"), strict=True))
        else:
            found = self._all
        width = next(iter(found.values())).shape[0] if found else 1
        if not len(keys):
            return np.zeros((0, width), np.float32)
        return np.stack([found.get(int(k), np.zeros(width, np.float32)) for k in keys])


def score_parts(ranker: RankSVM, X: np.ndarray, names: Sequence[str], dominant: bool, variant: str) -> np.ndarray:
    """Each feature's part of each candidate's score; variants B and C weigh the visual ones VISUAL_BOOST times
    for a query with a dominant object."""
    parts = ranker.contributions(X)
    if dominant and variant in BOOSTED:
        parts[:, [name in VISUAL_FEATURES or name.startswith("category") for name in names]] *= VISUAL_BOOST
    return parts


def visual_vectors(searcher: Searcher) -> dict[str, VisualVectors]:
    """The two feature spaces visual features compare in: the index's (pooled) and the same backbone's logits."""
    visual = searcher.require_index(searcher.snapshot().visual, "index").model
    backbone, _, digest = parse_model_key(visual)
    return {"pool": VisualVectors(searcher, visual), "logits": VisualVectors(searcher, f"{backbone}/logits@{digest}")}


class RelatedPins:
    """Related Pins for one catalog: candidates from `graph()` and the searcher, features, and the ranker of
    `model` (without one, candidates come by shared boards, then walk visits, then visual similarity)."""

    def __init__(
        self,
        searcher: Searcher,
        graph: Callable[[], BoardGraph],
        model: RelatedModel | None = None,
        vectors: Mapping[str, VisualVectors] | None = None,
    ) -> None:
        self.searcher, self.graph, self.model = searcher, graph, model
        self._vectors = dict(vectors) if vectors else None
        self._spaces: tuple[str, dict[str, VisualVectors]] | None = None  # the index's model, its spaces

    @property
    def vectors(self) -> dict[str, VisualVectors]:
        """The given vectors, else those of the published index's feature space (it may change)."""
        if self._vectors:
            return self._vectors
        model = self.searcher.require_index(self.searcher.snapshot().visual, "index").model
        spaces = self._spaces
        if spaces is None or spaces[0] != model:
            spaces = self._spaces = (model, visual_vectors(self.searcher))
        return spaces[1]

    # -- candidates ----------------------------------------------------------------------------------------

    def candidates(self, pin: Pin, graph: BoardGraph) -> Candidates:
        """The query's candidates from every source. A pin on no board has only visual and text ones: the boards
        of its text neighbours made its ranker worse on held-out boards (docs/results/README.md, Related Pins)."""
        query = self.rarest_words(pin.description)
        # descriptions only: a pin's text also holds its boards' names, which would leak held-out boards
        text = self.searcher.catalog.text_search(
            " ".join(query), DEPTH["text"] + 1, any_word=True, column="description"
        )
        text = [(key, score) for key, score in text if key != pin.key][: DEPTH["text"]]
        text_scores = dict(zip([k for k, _ in text], relative_scores([s for _, s in text]), strict=True))
        reached = graph.on_boards_of(text_scores if graph.degree(pin.key) > 0 else {}, pin.key)
        scores = {
            "cooccurrence": graph.cooccurrence(pin.key).top(DEPTH["cooccurrence"]).as_dict(),
            "walk": graph.walk(pin.key, WALK_STEPS, seed=pin.key, enough=DEPTH["walk"]).top(DEPTH["walk"]).as_dict(),
            "neighbour boards": reached.top(DEPTH["neighbour boards"]).as_dict(),
            "visual": {
                hit.key: hit.similarity
                for hit in self.searcher.search(PinQuery(pin.pin_id), DEPTH["visual"] + 1)
                if hit.key != pin.key
            },
            "text": text_scores,
        }
        keys = np.array(sorted(set().union(*(s.keys() for s in scores.values()))), dtype=np.int64)
        among = np.isin(reached.keys, keys)
        return Candidates(keys, scores, Scores(reached.keys[among], reached.scores[among]).as_dict())

    def rarest_words(self, description: str) -> list[str]:
        """The description's words that the fewest other pins hold: they say the most about what goes with it
        (a product line's name, a material), and a query of few, rare words stays fast on a big catalog."""
        frequency = self.searcher.catalog.document_frequencies(list(dict.fromkeys(words(description))))
        common = max(
            TEXT_MIN_COMMON, TEXT_COMMON_SHARE * len(self.searcher.require_index(self.searcher.snapshot().visual).codes)
        )
        # a word the pin alone holds matches nothing else; one in many pins ("men", "white") says little and is slow
        useful = [word for word, df in frequency.items() if 1 < df <= common]
        count = self.model.text_words if self.model else self.searcher.settings.related_text_words
        return sorted(useful, key=lambda word: (frequency[word], word))[:count]

    # -- features ------------------------------------------------------------------------------------------

    def features(
        self,
        pin: Pin,
        candidates: Candidates,
        graph: BoardGraph,
        names: Sequence[str],
        categories: Categories,
        variant: str = "none",
    ) -> tuple[np.ndarray, bool]:
        """The candidates' feature rows (columns `names`), and whether the query has a dominant object."""
        keys = candidates.keys
        cooc = np.array([candidates.scores["cooccurrence"].get(k, 0.0) for k in keys.tolist()])
        columns = {
            "cooccurrence": np.log1p(cooc),
            "jaccard": normalized(cooc, graph.degree(pin.key), graph.degrees(keys), graph.boards, "jaccard"),
            "lift": np.log1p(normalized(cooc, graph.degree(pin.key), graph.degrees(keys), graph.boards, "lift")),
            "walk": np.log1p(1000 * np.array([candidates.scores["walk"].get(k, 0.0) for k in keys.tolist()])),
            "neighbour boards": np.log1p([candidates.neighbour_boards.get(k, 0.0) for k in keys.tolist()]),
            "popularity": np.log1p(graph.degrees(keys)),
            "text": np.array([candidates.scores["text"].get(k, 0.0) for k in keys.tolist()]),
        }
        for source in SOURCES:
            columns[f"from {source}"] = np.array([float(k in candidates.scores[source]) for k in keys.tolist()])
        dominant = self._dominant_vector(pin)
        if any(name.startswith("visual") or name.startswith("category") for name in names):
            query_pool = dominant if dominant is not None and variant in ON_OBJECT else None
            columns["visual pool"] = self._similarity("pool", pin.key, keys, query_pool)
            columns["visual logits"] = self._similarity("logits", pin.key, keys)
        if any(name.startswith("category") for name in names):
            for name, share in zip(categories.names, categories.vector(pin, graph), strict=True):
                columns[f"category {name} x visual"] = share * columns.get("visual pool", np.zeros(len(keys)))
        X = np.stack([columns[name] for name in names], axis=1) if len(keys) else np.zeros((0, len(names)))
        return X, dominant is not None

    def _similarity(self, layer: str, key: int, keys: np.ndarray, query: np.ndarray | None = None) -> np.ndarray:
        rows = self.vectors[layer].rows([key, *keys.tolist()])  # one read for the query and its candidates
        query_vector = unit_vectors(query[None], "l2")[0] if query is not None else rows[0]
        return rows[1:] @ query_vector

    def _dominant_vector(self, pin: Pin) -> np.ndarray | None:
        """The pin's dominant object's vector, when `viscover objects` found one in the pooled feature space."""
        objects = self.searcher.snapshot().objects
        if objects is None or ObjectRun.parse(objects.model).model != self.vectors["pool"].model:
            return None
        found = self.searcher.catalog.dominant_object(objects.model, pin.key)
        return None if found is None else found[1]

    # -- ranking -------------------------------------------------------------------------------------------

    def scores(self, pin: Pin, candidates: Candidates, graph: BoardGraph) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Each candidate's score and each feature's part of it (rows x features), with the features' names."""
        model = self.model
        chosen = None if model is None else model.for_query(graph.degree(pin.key) > 0)
        if chosen is None:  # shared boards first, then walk visits (scaled), neighbours' boards, visual, text: summed
            keys = candidates.keys.tolist()
            score = np.array(
                [
                    1e6 * candidates.scores["cooccurrence"].get(k, 0.0)
                    + 1e3 * candidates.scores["walk"].get(k, 0.0)
                    + candidates.neighbour_boards.get(k, 0.0)
                    + candidates.scores["visual"].get(k, 0.0)
                    + candidates.scores["text"].get(k, 0.0)
                    for k in keys
                ]
            )
            return score, np.zeros((len(keys), 0)), []
        names, variant, ranker = chosen
        X, dominant = self.features(pin, candidates, graph, names, model.categories, variant)
        parts = score_parts(ranker, X, names, dominant, variant)
        return parts.sum(axis=1), parts, list(names)

    def related(self, pin_id: str, k: int = 20, offset: int = 0) -> list[RelatedHit]:
        """The pin's related pins from position `offset`, best first, with their sources and score parts."""
        if k < 1 or offset < 0:
            raise BadArgumentError(f"k must be at least 1 and offset at least 0, got k={k}, offset={offset}")
        pin = self.searcher.pin(pin_id)
        graph = self.graph()
        candidates = self.candidates(pin, graph)
        score, parts, names = self.scores(pin, candidates, graph)
        order = best_first(candidates.keys, score).keys
        pins = self.searcher.catalog.by_keys(order[: offset + k + 8].tolist())
        if len(pins) < offset + k < len(order):  # pins deleted since: read on, so no rank is skipped
            pins = self.searcher.catalog.by_keys(order.tolist())
        shown = [key for key in order.tolist() if key in pins][offset : offset + k]
        rows = np.searchsorted(candidates.keys, shown)  # candidates' keys are sorted
        return [
            RelatedHit(
                offset + n + 1,
                pins[key],
                float(score[row]),
                candidates.proposed_by(key),
                dict(zip(names, parts[row].tolist(), strict=True)),
            )
            for n, (row, key) in enumerate(zip(rows.tolist(), shown, strict=True))
        ]


class CatalogGraph:
    """The catalog's pin-board graph, kept current: saves made since the last call are added (save order),
    and when the catalog's running count and checksum of its saves differ from the copy's (saves went with
    deleted pins, and a deleted save's number may be given to a new one) all saves are read again. Each
    call returns an immutable graph, so concurrent requests never see one change under them."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self._graph = BoardGraph()
        self._last_save = 0
        self._digest = (0, 0)  # (count, checksum) of the saves in the copy
        self._lock = threading.Lock()

    def __call__(self) -> BoardGraph:
        catalog = self.searcher.catalog
        with self._lock, catalog.snapshot():
            saves, pins, boards = catalog.board_saves(self._last_save)
            digest = (self._digest[0] + len(pins), self._digest[1] + catalog.save_checksum(pins, boards))
            if catalog.board_saves_digest() != digest:
                saves, pins, boards = catalog.board_saves(0)
                self._graph, digest = BoardGraph(), (len(pins), catalog.save_checksum(pins, boards))
            if len(saves):
                self._graph = self._graph.added(pins, boards)
                self._last_save = int(saves[-1])
            self._digest = digest
            return self._graph


def load_related(searcher: Searcher, graph: CatalogGraph | None = None) -> RelatedPins:
    """Related Pins over a home: its catalog's graph and the model `viscover related train` saved, if any."""
    path = searcher.settings.home / MODEL_FILE
    model = RelatedModel.load(path) if path.exists() else None
    return RelatedPins(searcher, graph or CatalogGraph(searcher), model)


class LiveRelated:
    """Related Pins for a server: one graph kept current for every request, and the saved model reloaded when
    `viscover related train` saves a new one."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher, self.graph = searcher, CatalogGraph(searcher)
        self._loaded: tuple[int | None, RelatedPins] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> RelatedPins:
        path = self.searcher.settings.home / MODEL_FILE
        try:
            stamp: int | None = path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if self._loaded is None or self._loaded[0] != stamp:
                self._loaded = (stamp, load_related(self.searcher, self.graph))
            return self._loaded[1]
