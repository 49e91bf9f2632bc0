"""Trials of Related Pins' warm ranker that did not ship, measured where `auto` makes its choices: on held-out
folds of each seed's training rooms (the test rooms of `viscover eval related` are never read).

Each trial changes one thing against the features `auto` most often takes for warm queries (co-occurrence with
neighbour boards, variant none) and reports held-out recall@10 of board-mates over co-occurrence alone's on the
same queries:

- room-type match: the dot product of the query's and the candidate's shares of room types (from the fold's graph);
- category pairs: how many of the fold's boards hold a pin of the query's product category and one of the
  candidate's (log), that as lift (log), and whether the two categories are the same;
- top-10 pair weights: a second Rank-SVM whose pairs weigh 1.1 where the first one's ranking puts exactly one
  of the two pins in its top 10, else 0.1 (a LambdaRank-style weight: recall@10 only sees the top 10);
- splines: every continuous feature also through a quadratic spline with knots at its quantiles (over every
  query's candidates, labels unread);
- text likeness: every candidate's tf-idf cosine of its description to the query's, and its likeness to the
  descriptions of the query's top 10 co-occurring pins (the cosine to their mean, weighted by shared boards);
- text likeness and cold candidates: those features, and as more candidates the 20 pins on no board of the
  fold's graph whose descriptions are likest those pins' (almost half of a warm test query's room-mates are in
  no training room, and only visual and text neighbours can propose them);
- x query degree: every feature also times log(1 + the query's board count): for a query on one board, every
  co-occurrence count is 1.

    VISCOVER_MODELS_DIR=../shared/models python benchmarks/related_trials.py \
        ../shared/datasets/ikea-rooms --work /tmp/evrel-fresh --out docs/results/related-trials.md
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from related_ceiling import Descriptions, recall_at_10, rooms_arguments
from scipy import sparse
from serve_latency import write_report
from sklearn.preprocessing import SplineTransformer

from viscover.config import Settings
from viscover.evaluate.report import markdown_rows
from viscover.related.evaluate import rooms_home, split_rooms
from viscover.related.graph import BoardGraph, normalized
from viscover.related.ranker import RankSVM
from viscover.related.related import SOURCES, Candidates, Categories, RelatedPins, feature_names, visual_vectors
from viscover.related.train import (
    FOLDS,
    HELD_OUT_GROUPS,
    QueryRows,
    board_folds,
    held_out_splits,
    training_rows,
)

WITH_COLD = "+ text likeness and cold candidates"  # the trial that ranks more candidates than the others
TRIALS = (
    "shipped features",
    "+ room-type match",
    "+ category pairs",
    "top-10 pair weights",
    "+ splines",
    "+ text likeness",
    WITH_COLD,
    "x query degree",
)
COOCCURRING = 10  # the query's top co-occurring pins whose descriptions the text-likeness trials compare with
COLD_CANDIDATES = 20  # pins on no board that the cold-candidate trial adds to each query's candidates


class FoldTables:
    """One fold's graph (the training boards but the fold's label boards) as pins x room-type shares and boards x
    product categories: what the room-type match and category-pair trials read."""

    def __init__(
        self,
        pins: np.ndarray,
        boards: np.ndarray,
        label_boards: set[int],
        categories: Categories,
        category_of: np.ndarray,
    ) -> None:
        kept = ~np.isin(boards, list(label_boards))
        pins, boards = pins[kept], boards[kept]
        kinds = np.array([categories.board_category[board] for board in boards.tolist()])
        counts = sparse.csr_matrix(
            (np.ones(len(pins)), (pins, kinds)), shape=(len(category_of), len(categories.names))
        ).toarray()
        self.shares = counts / np.maximum(1, counts.sum(1, keepdims=True))
        known = category_of[pins] >= 0
        holding = sparse.csr_matrix(
            (np.ones(int(known.sum())), (boards[known], category_of[pins][known])),
            shape=(int(boards.max()) + 1, int(category_of.max()) + 1),
        )
        holding.data[:] = 1.0
        self.together = (holding.T @ holding).toarray()  # categories x categories: boards holding both
        self.holding = np.diag(self.together).copy()
        self.boards = len(np.unique(boards))
        self.category_of = category_of

    def features(self, key: int, keys: np.ndarray) -> np.ndarray:
        """Per candidate: room-type match, then log boards holding both categories, log their lift, same one."""
        room_type = self.shares[keys] @ self.shares[key]
        mine, theirs = self.category_of[key], self.category_of[keys]
        known = (theirs >= 0) & (mine >= 0)
        together = np.where(known, self.together[mine, theirs], 0.0)
        lift = normalized(together, int(self.holding[mine]), self.holding[theirs], self.boards, "lift")
        return np.stack([room_type, np.log1p(together), np.log1p(lift), known & (theirs == mine)], 1)


class TextLikeness(Descriptions):
    """The text-likeness trials' features and candidates, from every pin's description (tf-idf, no board read)."""

    def cooccurring_profile(self, key: int, graph: BoardGraph) -> np.ndarray:
        """The mean vector of the query's top co-occurring pins, weighted by the boards each shares with it."""
        top = graph.cooccurrence(key).top(COOCCURRING)
        return np.asarray(self.rows(top.keys).T @ (top.scores / top.scores.sum())).ravel()

    def features(self, key: int, keys: np.ndarray, profile: np.ndarray) -> np.ndarray:
        """Per candidate: cosine to the query's description, likeness to its co-occurring pins' (`profile`)."""
        return np.column_stack([self.cosine(key, keys), self.rows(keys) @ profile])

    def cold_candidates(self, key: int, graph: BoardGraph, profile: np.ndarray, taken: np.ndarray) -> np.ndarray:
        """Up to COLD_CANDIDATES pins on no board of `graph`, but the query and `taken`, likest `profile` (and
        sharing a word with it)."""
        likeness = self.vectors @ profile
        likeness[(graph.degrees(self.keys) > 0) | np.isin(self.keys, [key, *taken.tolist()])] = 0
        best = np.argsort(-likeness, kind="stable")[:COLD_CANDIDATES]
        return self.keys[best[likeness[best] > 0]]


def weighted_rank_svm(X: Sequence[np.ndarray], y: Sequence[np.ndarray], first: RankSVM, seed: int) -> RankSVM:
    """A Rank-SVM on every (mate, other) pair of each query, weighted 1.1 where `first` ranks exactly one of the
    two in its top 10, else 0.1; the first ranker's standardisation is kept."""
    differences, weights = [], []
    for rows, labels in zip(X, y, strict=True):
        rank = np.empty(len(rows), np.int64)
        rank[np.argsort(-first.decision_function(rows), kind="stable")] = np.arange(len(rows))
        better, worse = np.nonzero(labels[:, None] > labels[None, :])
        standard = (rows - first.mean_) / first.scale_
        differences.append(standard[better] - standard[worse])
        weights.append(np.abs((rank[better] < 10).astype(float) - (rank[worse] < 10)) + 0.1)
    ranker = RankSVM(first.C, first.max_pairs, seed)
    ranker.mean_, ranker.scale_ = first.mean_, first.scale_
    return ranker.fit_differences(np.concatenate(differences), np.concatenate(weights))


def held_out_recall(found: list[QueryRows], features: list[np.ndarray], trial: str, seed: int) -> np.ndarray:
    """Each query's recall@10, ranked by a ranker fitted on the other held-out groups' queries that can teach."""
    recall = np.zeros(len(found))
    for dev, fit in held_out_splits(found):
        X, y = [features[n] for n in fit], [found[n].y for n in fit]
        groups = np.concatenate([np.full(len(labels), n) for n, labels in enumerate(y)])
        ranker = RankSVM(seed=seed).fit(np.concatenate(X), np.concatenate(y), groups)
        if trial == "top-10 pair weights":
            ranker = weighted_rank_svm(X, y, ranker, seed)
        for n in dev:
            recall[n] = recall_at_10(ranker.decision_function(features[n]), found[n].y, len(found[n].query.mates))
    return recall


def main() -> None:
    args = rooms_arguments(__doc__).parse_args()

    table, totals = [], {trial: [0.0, 0.0] for trial in TRIALS}
    with rooms_home(args.data, Settings(), args.work, progress=False) as (engine, rooms):
        searcher = engine.searcher
        vectors = {name: v.preload() for name, v in visual_vectors(searcher).items()}
        category_names = searcher.catalog.categories()
        pins = searcher.catalog.by_keys(sorted(category_names))
        likeness = TextLikeness(pins)
        numbered = {name: n for n, name in enumerate(sorted({c for c in category_names.values() if c}))}
        category_of = np.full(max(category_names) + 1, -1, dtype=np.int64)
        for key, name in category_names.items():
            category_of[key] = numbered.get(name, -1)
        for seed in args.seeds:
            split = split_rooms(rooms, args.test_share, seed)
            rows = training_rows(
                searcher, split.pins, split.boards, board_types=split.board_types, vectors=vectors, seed=seed,
                progress=False,
            )  # fmt: skip
            found = rows.by_kind["warm"]
            names = feature_names("neighbours", rows.categories)
            splits = board_folds(split.pins, split.boards, FOLDS, seed)
            related = RelatedPins(searcher, BoardGraph, None, vectors)
            tables = [
                FoldTables(split.pins, split.boards, nested.label_boards, rows.categories, category_of)
                for nested in splits
            ]
            extra, alone, degree = [], np.zeros(len(found)), np.zeros(len(found))
            texted, with_cold = [], []  # the text trials' rows; the cold one's queries (more candidates)
            for n, query_rows in enumerate(found):
                query = query_rows.query
                graph = splits[query.fold].feature_graph
                candidates = related.candidates(pins[query.key], graph)
                assert len(candidates.keys) == len(query_rows.y), "candidates differ from the training rows'"
                alone[n] = len(set(candidates.ranking("cooccurrence")[:10]) & query.mates) / len(query.mates)
                degree[n] = graph.degree(query.key)
                extra.append(tables[query.fold].features(query.key, candidates.keys))
                profile = likeness.cooccurring_profile(query.key, graph)
                cold = likeness.cold_candidates(query.key, graph, profile, candidates.keys)
                cold_only = Candidates(cold, {source: {} for source in SOURCES})
                keys = np.r_[candidates.keys, cold]
                X = np.r_[
                    query_rows.X[:, : len(names)],
                    related.features(pins[query.key], cold_only, graph, names, rows.categories)[0],
                ]
                X = np.hstack([X, likeness.features(query.key, keys, profile)])
                texted.append(X[: len(candidates.keys)])
                with_cold.append(replace(query_rows, X=X, X_object=X, y=np.isin(keys, list(query.mates)).astype(int)))
            plain = [query_rows.X[:, : len(names)] for query_rows in found]
            every = np.concatenate(plain)
            continuous = [j for j in range(len(names)) if len(np.unique(every[:, j])) > 2]
            spline = SplineTransformer(n_knots=4, degree=2, knots="quantile").fit(every[:, continuous])
            trial_rows = {
                "shipped features": plain,
                "+ room-type match": [np.hstack([X, more[:, :1]]) for X, more in zip(plain, extra, strict=True)],
                "+ category pairs": [np.hstack([X, more[:, 1:]]) for X, more in zip(plain, extra, strict=True)],
                "top-10 pair weights": plain,
                "+ splines": [np.hstack([X, spline.transform(X[:, continuous])]) for X in plain],
                "+ text likeness": texted,
                WITH_COLD: [query_rows.X for query_rows in with_cold],
                "x query degree": [np.hstack([X, X * np.log1p(d)]) for X, d in zip(plain, degree, strict=True)],
            }
            cells = [str(seed), str(len(found)), f"{alone.mean():.4f}"]
            for trial in TRIALS:
                queries = with_cold if trial == WITH_COLD else found
                recall = held_out_recall(queries, trial_rows[trial], trial, seed)
                totals[trial][0] += recall.sum()
                totals[trial][1] += alone.sum()
                cells.append(f"{recall.sum() / alone.sum():.3f}")
            print(*cells, flush=True)
            table.append(cells)
    table.append(["all", "", "", *(f"**{mine / base:.3f}**" for mine, base in totals.values())])
    write_report(
        args.out,
        "# Related Pins: trials of the warm ranker on held-out folds of the training rooms",
        "Held-out recall@10 of board-mates over co-occurrence alone's on the same warm label queries (each of "
        f"{HELD_OUT_GROUPS} groups of the {FOLDS} folds' boards in turn, ranked by a Rank-SVM fitted on the other "
        "groups'); the last row pools every seed's queries.",
        markdown_rows(["seed", "warm queries", "co-occurrence recall@10", *TRIALS], table),
    )


if __name__ == "__main__":
    main()
