"""How many folds Related Pins' cross-fitted training needs, chosen without the test rooms of `viscover eval
related`: each seed's training rooms are split again (same seed, same share), rankers learn from the inner
training rooms with their boards dealt into 5 folds and into the shipped FOLDS, and rank for the inner test
rooms' items. With 5 folds each label board's feature graph holds 80% of the training boards, while serving
uses all of them: the count features training sees are thinner than those served. Reports warm recall@10 over
co-occurrence alone's (the bar's ratio) and each ranker's with FOLDS over with 5, paired bootstrap over rooms.

    VISCOVER_MODELS_DIR=../shared/models python benchmarks/related_folds.py \
        ../shared/datasets/ikea-rooms --work /tmp/evrel-fresh --out docs/results/related-folds.md
"""

from __future__ import annotations

from dataclasses import replace

from related_ceiling import rooms_arguments
from serve_latency import write_report

from viscover.config import Settings
from viscover.evaluate.report import markdown_rows
from viscover.related.evaluate import AUTO, CONTROL, Outcome, RelatedStudy, rooms_home, run_seed, split_rooms
from viscover.related.related import visual_vectors
from viscover.related.train import FOLDS

OLD_FOLDS = 5  # the fold count before this benchmark
ROWS = (CONTROL, "+ visual", AUTO)  # `auto` was the shipped ranker when this was measured


def interval(study: RelatedStudy, outcomes: list[Outcome], row: str, base: str) -> str:
    value, (low, high) = study.ratio(outcomes, row, base)
    return f"{value:.3f} [{low:.2f}, {high:.2f}]"


def main() -> None:
    args = rooms_arguments(__doc__).parse_args()
    counts = (OLD_FOLDS, FOLDS)
    merged: list[Outcome] = []  # each warm inner test query, with every row's recall under each fold count
    with rooms_home(args.data, Settings(), args.work, progress=False) as (engine, rooms):
        vectors = {name: v.preload() for name, v in visual_vectors(engine.searcher).items()}
        for seed in args.seeds:
            outer = split_rooms(rooms, args.test_share, seed)
            inner = [room for n, room in enumerate(rooms) if n not in outer.test_rooms]
            found = {
                folds: run_seed(
                    engine.searcher, inner, vectors, test_share=args.test_share, seed=seed, progress=False, folds=folds
                )[0]
                for folds in counts
            }
            for few, many in zip(found[OLD_FOLDS], found[FOLDS], strict=True):
                assert (few.unit, few.warm, few.candidate_recall) == (many.unit, many.warm, many.candidate_recall)
                if not few.warm:
                    continue
                recall = {"cooccurrence": few.recall["cooccurrence"]}
                for folds, outcome in ((OLD_FOLDS, few), (FOLDS, many)):
                    recall |= {f"{row} @{folds}": outcome.recall[row] for row in ROWS}
                merged.append(replace(few, recall=recall))
            print(f"seed {seed}: {sum(o.seed == seed for o in merged)} warm queries", flush=True)
        study = RelatedStudy(merged, tuple(args.seeds), {}, len(engine.catalog), len(rooms), 1000)
    table = []
    for row in ROWS:
        per_seed = {folds: [] for folds in counts}
        for seed in args.seeds:
            mine = [o for o in merged if o.seed == seed]
            for folds in counts:
                per_seed[folds].append(f"{study.ratio(mine, f'{row} @{folds}', 'cooccurrence', False)[0]:.2f}")
        table.append(
            [
                row,
                *(interval(study, merged, f"{row} @{folds}", "cooccurrence") for folds in counts),
                interval(study, merged, f"{row} @{FOLDS}", f"{row} @{OLD_FOLDS}"),
                " / ".join(per_seed[OLD_FOLDS]),
                " / ".join(per_seed[FOLDS]),
            ]
        )
    write_report(
        args.out,
        "# Related Pins: how many folds of boards training needs (inner splits of the training rooms)",
        f"Each seed's training rooms split again into inner training and test rooms ({args.test_share:.0%} test); "
        f"{len(merged)} warm inner test queries over seeds {', '.join(map(str, args.seeds))}. Recall@10 over "
        f"co-occurrence alone's with the training boards dealt into {OLD_FOLDS} and into {FOLDS} folds, and the "
        f"ranker's own recall with {FOLDS} folds over with {OLD_FOLDS} [95% paired bootstrap over rooms], then per "
        "seed.",
        markdown_rows(
            [
                "ranker",
                f"{OLD_FOLDS} folds / co-occurrence",
                f"{FOLDS} folds / co-occurrence",
                f"{FOLDS} folds / {OLD_FOLDS} folds",
                f"per seed, {OLD_FOLDS} folds",
                f"per seed, {FOLDS} folds",
            ],
            table,
        ),
    )


if __name__ == "__main__":
    main()
