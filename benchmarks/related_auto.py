"""Which features Related Pins ships for each kind of query, chosen without the test rooms of `viscover eval
related`: each seed's training rooms are split again (same seed, same share), every ranker row of the evaluation
learns from the inner training rooms and ranks for the inner test rooms' items. Compares each row with `auto`
(per kind, the simplest feature set and variant within one standard error of the best on held-out folds of the
training boards): recall@10 over the bars' baselines and over `auto`'s, paired bootstrap over inner test rooms.

    VISCOVER_MODELS_DIR=../shared/models python benchmarks/related_auto.py \
        ../shared/datasets/ikea-rooms --work /tmp/evrel --out docs/results/related-auto.md
"""

from __future__ import annotations

from related_ceiling import rooms_arguments
from serve_latency import write_report

from viscover.config import Settings
from viscover.evaluate.report import markdown_rows
from viscover.related.evaluate import AUTO, BARS, RANKERS, Outcome, RelatedStudy, rooms_home, run_seed, split_rooms
from viscover.related.related import visual_vectors


def main() -> None:
    args = rooms_arguments(__doc__).parse_args()
    outcomes: list[Outcome] = []
    choices: dict[int, str] = {}
    with rooms_home(args.data, Settings(), args.work, progress=False) as (engine, rooms):
        vectors = {name: v.preload() for name, v in visual_vectors(engine.searcher).items()}
        for seed in args.seeds:
            outer = split_rooms(rooms, args.test_share, seed)
            inner = [room for n, room in enumerate(rooms) if n not in outer.test_rooms]
            found, choices[seed] = run_seed(
                engine.searcher, inner, vectors, test_share=args.test_share, seed=seed, progress=False
            )
            outcomes += found
            print(f"seed {seed}: {len(found)} inner test queries; auto chose {choices[seed]}", flush=True)
        study = RelatedStudy(outcomes, tuple(args.seeds), choices, len(engine.catalog), len(rooms), 1000)
    tables = []
    for kind, (base, _) in BARS.items():
        mine = study.subset(kind == "warm")
        table = []
        for row in RANKERS:
            cells = [row]
            for over in (base, AUTO):
                value, (low, high) = study.ratio(mine, row, over)
                cells.append(f"{value:.3f} [{low:.3f}, {high:.3f}]")
            per_seed = [study.ratio([o for o in mine if o.seed == seed], row, base, False)[0] for seed in args.seeds]
            table.append([*cells, " / ".join(f"{v:.2f}" for v in per_seed)])
        tables.append(
            f"## {kind.capitalize()} queries ({len(mine)})\n\n"
            + markdown_rows(["ranker", f"recall@10 / {base}", f"recall@10 / {AUTO}", f"per seed / {base}"], table)
        )
    write_report(
        args.out,
        "# Related Pins: each kind of query's features, chosen on inner splits of the training rooms",
        f"Each seed's training rooms split again into inner training and test rooms ({args.test_share:.0%} test); "
        f"seeds {', '.join(map(str, args.seeds))}; the outer test rooms are never read. [95% paired bootstrap over "
        "inner test rooms]",
        *tables,
        "What auto chose:\n\n" + "\n".join(f"- seed {seed}: {text}" for seed, text in choices.items()),
    )


if __name__ == "__main__":
    main()
