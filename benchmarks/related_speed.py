"""Speed of Related Pins on a benchmark home (benchmarks/make_home.py) with a 1M-edge pin-board graph.

The graph: board sizes are drawn from ikea-rooms' room sizes, and each board's pins are drawn from the home's
indexed pins with probability proportional to a weight drawn from ikea-rooms' pin degrees (how many rooms a
product is in), so both shapes are IKEA's, with pin degrees scaled up until the graph has `--edges` saves.
The graph is built in memory (`BoardGraph`, as `CatalogGraph` builds it from the catalog's saves). A ranker
on every feature with variant B (the slowest `auto` could choose) is trained on it first, and
its time is reported. The home has no logits, so the logits feature reads the pooled vectors a second time
(the same amount of work). Rows are the library call `viscover related show` makes, in a warm process, and
what a server adds per request to keep its copy of the catalog's saves current (the home's own boards); the
baseline is a visual search by pin id in the same run.

    python benchmarks/related_speed.py --home /tmp/bench100k --out docs/results/related-speed.md
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from serve_latency import SHARED, latency_table, timed, write_report

from viscover import PinQuery, Searcher
from viscover.related import BoardGraph, CatalogGraph, RelatedPins
from viscover.related.related import VisualVectors
from viscover.related.train import train_model
from viscover.threads import limit_threads

IKEA = SHARED / "datasets" / "ikea-rooms"
TARGET = "target: related pins of a warm pin p50 < 30 ms"


def ikea_shapes() -> tuple[np.ndarray, np.ndarray]:
    """ikea-rooms' room sizes and product degrees (rooms per product)."""
    sizes = [len(json.loads(line)["products"]) for line in (IKEA / "rooms.jsonl").read_text().splitlines()]
    degrees = [len(json.loads(line)["boards"]) for line in (IKEA / "products.jsonl").read_text().splitlines()]
    return np.array(sizes), np.maximum(np.array(degrees), 1)


def synthetic_graph(keys: np.ndarray, edges: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(pins, boards) of about `edges` saves shaped like ikea-rooms (see the module's docstring)."""
    sizes, degrees = ikea_shapes()
    weights = rng.choice(degrees, len(keys)).astype(np.float64)
    board_sizes = rng.choice(sizes, int(edges / sizes.mean() * 1.02))
    picks = keys[rng.choice(len(keys), int(board_sizes.sum()), p=weights / weights.sum())]
    boards = np.repeat(np.arange(len(board_sizes)), board_sizes)
    unique = np.unique(np.stack([picks, boards], axis=1), axis=0)[:edges]  # a pin drawn twice for one board: once
    return unique[:, 0], unique[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200, help="timed queries per row")
    parser.add_argument("--train-queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))
    rng = np.random.default_rng(args.seed)
    searcher = Searcher.open(args.home)
    limit_threads(searcher.settings.search_threads)
    pool = searcher.snapshot().visual.model
    keys = searcher.catalog.feature_keys(pool)

    start = time.perf_counter()
    pins, boards = synthetic_graph(keys, args.edges, rng)
    made = time.perf_counter() - start
    start = time.perf_counter()
    graph = BoardGraph(pins, boards)
    loaded = time.perf_counter() - start
    vectors = {"pool": VisualVectors(searcher, pool), "logits": VisualVectors(searcher, pool)}
    model, report = train_model(
        searcher,
        pins,
        boards,
        feature_set="text",  # every feature, on the dominant object: the slowest ranker `auto` could choose
        variant="B",
        vectors=vectors,
        max_queries=args.train_queries,
        seed=args.seed,
        progress=False,
    )
    trained = RelatedPins(searcher, lambda: graph, model, vectors)
    sources_only = RelatedPins(searcher, lambda: graph, None, vectors)

    warm = keys[graph.degrees(keys) > 0]
    chosen = rng.choice(warm, 3 * (args.queries + 2), replace=False)
    by_key = searcher.catalog.by_keys(chosen.tolist())
    ids = [by_key[k].pin_id for k in chosen.tolist()]
    n = args.queries + 2
    rows = {
        "visual search by pin id, k=20 (baseline)": timed(
            [lambda p=p: searcher.search(PinQuery(p), 20) for p in ids[:n]]
        ),
        "related pins, warm pin, trained ranker, k=20": timed(
            [lambda p=p: trained.related(p, 20) for p in ids[n : 2 * n]]
        ),
        "related pins, warm pin, no ranker (sources only), k=20": timed(
            [lambda p=p: sources_only.related(p, 20) for p in ids[2 * n :]]
        ),
    }
    # what a server pays on top, per request: keeping its copy of the catalog's own saves current
    catalog_graph = CatalogGraph(searcher)
    start = time.perf_counter()
    own = catalog_graph()
    first_load = time.perf_counter() - start
    rows["catalog graph refresh, no new saves (per request)"] = timed([catalog_graph] * n)
    degree = graph.degrees(keys)
    facts = (
        f"home {args.home}: {len(keys)} indexed pins; graph of {graph.edges} saves on {graph.boards} boards "
        f"(drawn in {made:.1f} s, loaded into the sparse graph in {loaded:.2f} s); pin degree mean "
        f"{degree.mean():.1f}, max {degree.max()}, {np.mean(degree == 0):.1%} of pins on no board; ranker trained "
        f"on {report.queries} queries ({report.rows} candidates) in {report.seconds:.1f} s ({model.describe()}); "
        f"{args.queries} timed queries per row, {searcher.settings.search_threads} search thread(s); the home's "
        f"own catalog graph ({own.edges} saves) first loaded in {first_load:.2f} s"
    )
    write_report(args.out, facts, latency_table(rows, "visual search by pin id, k=20 (baseline)", digits=2), TARGET)


if __name__ == "__main__":
    main()
