"""What a linear Rank-SVM could give Related Pins' warm queries on ikea-rooms if the training rooms taught it
perfectly: rankers fitted on each seed's warm **test** queries themselves (their candidates, features and
room-mates) and scored on those same queries. Never a result, and not a strict ceiling either (the pairwise
hinge loss is not recall@10, so a ranker trained elsewhere can score higher), but it tells whether more or
better training data could lift a feature set past the bar (recall@10 1.15 times co-occurrence alone). Feature
sets: the control's co-occurrence features, those with the neighbour-board features (the smallest set `auto`
offers), every feature of `viscover related train` (`text`), and the control's with the cosine similarity of
the two pins' descriptions (tf-idf) added, a text feature every candidate has. It also counts the room-mates
no graph source can propose (those in no training room) and how many of them are candidates at all.

    VISCOVER_MODELS_DIR=../shared/models python benchmarks/related_ceiling.py \
        ../shared/datasets/ikea-rooms --work /tmp/evrel-fresh --out docs/results/related-ceiling.md
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from scipy import sparse
from serve_latency import write_report
from sklearn.feature_extraction.text import TfidfVectorizer

from viscover.config import Settings
from viscover.evaluate.report import markdown_rows
from viscover.ingest import Pin
from viscover.related.evaluate import rooms_home, split_rooms
from viscover.related.graph import BoardGraph
from viscover.related.ranker import RankSVM
from viscover.related.related import GRAPH_FEATURES, Categories, RelatedPins, feature_names, visual_vectors

MATE_COLUMNS = ("room-mates in no training room", "of them, candidates")
SETS = ("control", "control + neighbour boards", "every feature", "control + description cosine")


def recall_at_10(score: np.ndarray, y: np.ndarray, mates: int) -> float:
    return float(y[np.argsort(-score, kind="stable")[:10]].sum() / mates)


class Descriptions:
    """The pins' descriptions as tf-idf vectors (unit length): a text likeness every pin has, fitted on the
    catalog's words alone (no board is read)."""

    def __init__(self, pins: Mapping[int, Pin]) -> None:
        self.keys = np.array(sorted(pins), dtype=np.int64)
        descriptions = [pins[key].description for key in self.keys.tolist()]
        self.vectors = TfidfVectorizer(stop_words="english").fit_transform(descriptions)

    def rows(self, keys: np.ndarray) -> sparse.csr_matrix:
        return self.vectors[np.searchsorted(self.keys, keys)]

    def cosine(self, key: int, keys: np.ndarray) -> np.ndarray:
        """Each of `keys`' description's cosine to pin `key`'s."""
        return (self.rows(keys) @ self.rows(np.array([key])).T).toarray().ravel()


def rooms_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark that splits ikea-rooms by seed as `viscover eval related` does."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="ikea-rooms")
    parser.add_argument("--work", type=Path, required=True, help="where the evaluation's home is (or is built)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(12)))
    parser.add_argument("--test-share", type=float, default=0.3)
    parser.add_argument("--out", type=Path)
    return parser


def main() -> None:
    args = rooms_arguments(__doc__).parse_args()

    rows = []
    with rooms_home(args.data, Settings(), args.work, progress=False) as (engine, rooms):
        searcher = engine.searcher
        vectors = {name: v.preload() for name, v in visual_vectors(searcher).items()}
        pins = searcher.catalog.by_keys(sorted(searcher.catalog.categories()))
        descriptions = Descriptions(pins)
        ratios: dict[str, list[float]] = {name: [] for name in SETS}
        for seed in args.seeds:
            split = split_rooms(rooms, args.test_share, seed)
            graph = BoardGraph(split.pins, split.boards)
            categories = Categories.from_board_types(split.board_types)
            names = feature_names("text", categories)
            related = RelatedPins(searcher, lambda graph=graph: graph, None, vectors)
            queries = []  # (features of every set, relevance, mates, co-occurrence alone's recall)
            all_mates = unseen_mates = unseen_candidates = 0  # unseen: in no training room
            for board in sorted(split.test_rooms):
                for key in rooms[board].keys:
                    mates = set(rooms[board].keys) - {key}
                    if not mates or graph.degree(key) == 0:
                        continue
                    candidates = related.candidates(pins[key], graph)
                    X, _ = related.features(pins[key], candidates, graph, names, categories)
                    keys = candidates.keys
                    cosine = descriptions.cosine(key, keys)[:, None]
                    control = X[:, : len(GRAPH_FEATURES)]
                    sets = {
                        "control": control,
                        SETS[1]: X[:, : len(feature_names("neighbours", categories))],
                        "every feature": X,
                        SETS[3]: np.hstack([control, cosine]),
                    }
                    y = np.isin(keys, list(mates)).astype(int)
                    unseen = [mate for mate in mates if graph.degree(mate) == 0]
                    all_mates += len(mates)
                    unseen_mates += len(unseen)
                    unseen_candidates += int(np.isin(unseen, keys).sum())
                    alone = len(set(candidates.ranking("cooccurrence")[:10]) & mates) / len(mates)
                    queries.append((sets, y, len(mates), alone))
            base = sum(q[3] for q in queries)
            cells = [
                str(seed),
                str(len(queries)),
                f"{unseen_mates / all_mates:.2f}",
                f"{unseen_candidates / unseen_mates:.2f}",
                f"{base / len(queries):.4f}",
            ]
            for name in SETS:
                X = np.concatenate([q[0][name] for q in queries])
                y = np.concatenate([q[1] for q in queries])
                groups = np.concatenate([np.full(len(q[1]), n) for n, q in enumerate(queries)])
                ranker = RankSVM(seed=seed).fit(X, y, groups)
                mine = sum(recall_at_10(ranker.decision_function(q[0][name]), q[1], q[2]) for q in queries)
                ratios[name].append(mine / base)
                cells.append(f"{mine / base:.2f}")
            print(*cells, flush=True)
            rows.append(cells)
    rows.append(["mean", "", "", "", "", *(f"**{np.mean(ratios[name]):.2f}**" for name in SETS)])
    write_report(
        args.out,
        "# Related Pins: what a Rank-SVM fitted on the warm test queries themselves reaches on ikea-rooms",
        "Rankers fitted on each seed's warm test queries and scored on the same queries (never a result; not a "
        "strict ceiling, as the pairwise hinge loss is not recall@10): recall@10 over co-occurrence alone's on "
        "those queries. The bar asks 1.15 of a ranker trained on the training rooms only. Also the share of the "
        "queries' room-mates that are in no training room (no graph source can propose them), and the share of "
        "those that some source (visual or text neighbours) does propose.",
        markdown_rows(["seed", "warm queries", *MATE_COLUMNS, "co-occurrence recall@10", *SETS], rows),
    )


if __name__ == "__main__":
    main()
