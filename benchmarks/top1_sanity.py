"""Sanity figure: for a seeded sample of query pins, how often is the nearest *other* pin of the same
category? Raw L2 versus binary Hamming codes, over an already indexed home.

    viscover --home .viscover ingest ../shared/datasets/caltech101 && viscover --home .viscover index
    python benchmarks/top1_sanity.py --home .viscover --queries 500

BACKGROUND_Google (clutter, not a class) is never a query but stays in the index as a distractor.
The full Precision@K protocol is `viscover eval retrieval` (a separate issue).
"""

from __future__ import annotations

import argparse

import numpy as np

from viscover import Engine
from viscover.evaluate import sample_queries, score_retrieval
from viscover.features import Binarizer
from viscover.index import VectorIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclude", default="BACKGROUND_Google", help="category never used as a query")
    args = parser.parse_args()

    with Engine.open(args.home) as engine:
        keys, vectors = engine.catalog.features(engine.feature_key)
        category = engine.catalog.categories()
    labels = np.array([category[int(k)] for k in keys])
    chosen = sample_queries(labels.tolist(), args.queries, args.seed, exclude=[args.exclude])
    print(f"{len(keys)} pins, {len(chosen)} queries (seed {args.seed}), features {engine.feature_key}")
    print(f"{'representation':<28} {'bytes/item':>10} {'top-1 same category':>20}")

    rows = [
        ("raw L2", VectorIndex.create("Flat", "l2", vectors.shape[1]), None),
        ("raw L1", VectorIndex.create("Flat", "l1", vectors.shape[1]), None),
    ]
    for method, bits in [("sign", None), ("median", None), ("itq", 256), ("itq", 512), ("median", 256)]:
        binarizer = Binarizer(method, bits).fit(vectors)
        rows.append(
            (
                f"binary {method} {binarizer.code_bits_}-bit H.",
                VectorIndex.create("BFlat", "hamming", binarizer.code_bits_),
                binarizer,
            )
        )
    for name, index, binarizer in rows:
        data = vectors if binarizer is None else binarizer.transform(vectors)
        index.add(keys, data)
        score = score_retrieval(index, data, keys, labels, chosen, ks=[1]).precision[1]
        print(f"{name:<28} {data.shape[1] * data.itemsize:>10} {score:>20.3f}")


if __name__ == "__main__":
    main()
