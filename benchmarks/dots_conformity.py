"""How a dot's category conformity should be measured (`dot_conformity`, `dot_conformity_depth`): the share of
its top results in which the detector saw the dot's own label, or the paper's largest share of them with one
category, over the top 5, 10 or 20 results.

Each choice runs `viscover eval dots`'s whole protocol on the same catalog (tuned on coco128, reported on
coco-mini val). The choice is made on the tuning split alone: conformity's ROC AUC there, and the best precision
ratio over the detector alone that any grid thresholds reach there at one dot per image or more; the report
columns only show how each choice then fares.

    VISCOVER_MODELS_DIR=../shared/models python benchmarks/dots_conformity.py \
        --work /tmp/dots-work --out docs/results/dots-conformity.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from serve_latency import write_report

from viscover.config import Settings
from viscover.evaluate.report import markdown_rows
from viscover.flashlight.evaluate_dots import CONFORMITY_TEXT, evaluate_dots

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune-data", type=Path, default=SHARED / "datasets" / "coco128")
    parser.add_argument("--report-data", type=Path, default=SHARED / "datasets" / "coco-mini")
    parser.add_argument("--work", type=Path, required=True, help="where the evaluation's catalog is (or is built)")
    parser.add_argument("--depths", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    rows = []
    for conformity in CONFORMITY_TEXT:
        for depth in args.depths:
            settings = Settings(dot_conformity=conformity, dot_conformity_depth=depth)
            study = evaluate_dots(
                args.tune_data, args.report_data, settings, args.work, draws=args.draws, progress=False
            )
            ceiling = study.ceilings((1.0,))[1.0]
            ratio, (low, high) = study.gain()
            row = [
                conformity,
                str(depth),
                f"{study.auc(study.tune, intervals=False)['conformity'][0]:.3f}",
                "-" if ceiling is None else f"{ceiling[0]:.2f}",
                f"{study.auc(study.report, intervals=False)['conformity'][0]:.3f}",
                f"{ratio:.2f} [{low:.2f}, {high:.2f}]",
            ]
            print(*row, flush=True)
            rows.append(row)
    header = ["conformity", "top results", "tune AUC", "best tune ratio (>= 1 dot/image)", "report AUC", "report ratio"]
    write_report(
        args.out,
        "# Flashlight dots: how to measure category conformity",
        f"Each row is `viscover eval dots` (tuned on {args.tune_data.name}, reported on {args.report_data.name} "
        "val) with one way of measuring conformity: "
        + "; ".join(f"`{name}`: {text}" for name, text in CONFORMITY_TEXT.items())
        + ". The tune columns choose; the report ratio is all three filters against the detector's score alone "
        "at the same dots per image (the bar is 1.20).",
        markdown_rows(header, rows),
    )


if __name__ == "__main__":
    main()
