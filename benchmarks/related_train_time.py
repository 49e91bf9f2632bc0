"""How long `viscover related train` takes to learn from every room of ikea-rooms: the cross-fitted training
rows, then `auto`'s comparison of feature sets and variants on held-out folds, then the rankers. The home is the
evaluation's (ikea-rooms' products with their logits and dominant objects), so extracting logits, the one other
step `related train` takes, has nothing left to do.

    VISCOVER_MODELS_DIR=../shared/models python benchmarks/related_train_time.py \\
        ../shared/datasets/ikea-rooms --work /tmp/evrel-fresh
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from viscover.config import Settings
from viscover.related.evaluate import rooms_home
from viscover.related.train import train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="ikea-rooms")
    parser.add_argument("--work", type=Path, required=True, help="where the evaluation's home is (or is built)")
    args = parser.parse_args()
    with rooms_home(args.data, Settings(), args.work, progress=False) as (engine, rooms):
        pins = np.array([key for room in rooms for key in room.keys])
        boards = np.array([board for board, room in enumerate(rooms) for _ in room.keys])
        types = {board: room.kind for board, room in enumerate(rooms)}
        model, report = train_model(
            engine.searcher, pins, boards, feature_set="auto", variant="auto", board_types=types, progress=False
        )
    compared = sum(len(recall) for recall in report.dev_recall.values())
    print(
        f"{len(rooms)} rooms: {report.queries} training queries ({report.rows} candidates) in {report.folds} folds, "
        f"{compared} choices compared, in {report.seconds:.1f} s: {model.describe()}"
    )


if __name__ == "__main__":
    main()
