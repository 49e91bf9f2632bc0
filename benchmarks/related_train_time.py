"""How long `viscover related train` takes to learn from every room of ikea-rooms: the cross-fitted training
rows, then the rankers; with the settings' defaults (a feature set per kind of query) and with `auto`, which also
compares feature sets and variants on held-out folds (the costliest choice). The home is the
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
    settings = Settings()
    choices = {
        "defaults": (settings.related_feature_sets, settings.related_variant),
        "auto": ("auto", "auto"),
    }
    with rooms_home(args.data, settings, args.work, progress=False) as (engine, rooms):
        pins = np.array([key for room in rooms for key in room.keys])
        boards = np.array([board for board, room in enumerate(rooms) for _ in room.keys])
        types = {board: room.kind for board, room in enumerate(rooms)}
        for name, (feature_set, variant) in choices.items():
            model, report = train_model(
                engine.searcher, pins, boards, feature_set=feature_set, variant=variant, board_types=types,
                progress=False,
            )  # fmt: skip
            compared = sum(len(recall) for recall in report.dev_recall.values())
            print(
                f"{name}: {len(rooms)} rooms: {report.queries} training queries ({report.rows} candidates) in "
                f"{report.folds} folds, {compared} choices compared, in {report.seconds:.1f} s: {model.describe()}",
                flush=True,
            )


if __name__ == "__main__":
    main()
