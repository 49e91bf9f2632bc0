"""How many of a pin's rarest description words Related Pins' text candidates should match
(`related_text_words`), chosen without the test rooms.

For each seed of `viscover eval related`, only its training rooms are used: `viscover related train`'s own
held-out folds of label boards (`auto` features, the settings' variant) give each choice's recall@10 of
board-mates over every label query of a kind (a mate no source proposes is missed, so every value is scored
on the same queries). A value's score per kind is the recall of the choice `auto` makes (the simplest within
one standard error of the best it compares on these folds, so it may read a little high), averaged over the seeds;
the setting's default is the value with the best mean of the two kinds.

    VISCOVER_MODELS_DIR=../shared/models python benchmarks/related_text_words.py \
        ../shared/datasets/ikea-rooms --work /tmp/evrel-fresh --out docs/results/related-text-words.md
"""

from __future__ import annotations

import numpy as np
from related_ceiling import rooms_arguments
from serve_latency import write_report

from viscover.config import Settings
from viscover.evaluate.report import markdown_rows
from viscover.related.evaluate import rooms_home, split_rooms
from viscover.related.related import KINDS, visual_vectors
from viscover.related.train import train_model
from viscover.search import Searcher


def main() -> None:
    parser = rooms_arguments(__doc__)
    parser.add_argument("--words", type=int, nargs="+", default=[1, 2, 3, 4, 6, 10])
    parser.set_defaults(seeds=[0, 1, 2])
    args = parser.parse_args()

    settings = Settings()
    chosen: dict[int, dict[str, list[float]]] = {}
    with rooms_home(args.data, settings, args.work, progress=False) as (engine, rooms):
        home = engine.settings
        vectors = {name: v.preload() for name, v in visual_vectors(engine.searcher).items()}  # read once
        for words in args.words:
            chosen[words] = {kind: [] for kind in KINDS}
            with Searcher(home.model_copy(update={"related_text_words": words})) as searcher:
                for seed in args.seeds:
                    split = split_rooms(rooms, args.test_share, seed)
                    model, report = train_model(
                        searcher,
                        split.pins,
                        split.boards,
                        feature_set="auto",
                        variant="auto",
                        board_types=split.board_types,
                        vectors=vectors,
                        seed=seed,
                        progress=False,
                    )
                    for kind in KINDS:
                        choice = model.feature_sets[kind], model.variants[kind]
                        chosen[words][kind].append(report.dev_recall[kind][choice])
            print(words, {kind: np.round(values, 4).tolist() for kind, values in chosen[words].items()}, flush=True)
    mean = {words: {kind: float(np.mean(v)) for kind, v in by_kind.items()} for words, by_kind in chosen.items()}
    best = max(mean, key=lambda words: (np.mean(list(mean[words].values())), -words))
    rows = [
        [f"**{words}**" if words == best else str(words)]
        + [f"{mean[words][kind]:.4f} ({' / '.join(f'{v:.4f}' for v in chosen[words][kind])})" for kind in KINDS]
        + [f"{np.mean(list(mean[words].values())):.4f}"]
        for words in args.words
    ]
    write_report(
        args.out,
        "# Related Pins: how many rare words text candidates match",
        f"Training rooms of seeds {', '.join(map(str, args.seeds))} only (test share {args.test_share}); recall@10 "
        f"of board-mates (every label query) on `related train`'s held-out folds of label boards, for the "
        "choice `auto` makes (features: auto, variant: auto). Mean over seeds (each seed).",
        markdown_rows(["words", *(f"{kind} recall@10" for kind in KINDS), "mean of both"], rows),
        f"Best: {best} words.",
    )


if __name__ == "__main__":
    main()
