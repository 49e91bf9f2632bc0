from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import caltech_image
from viscover import Engine
from viscover.errors import NotEnoughDataError, ViscoverError
from viscover.evaluate import (
    feature_map_sample,
    format_table,
    plan_grid,
    plot_feature_map,
    run_study,
    write_report,
)


def test_grid_pairs_raw_with_l2_l1_and_binary_with_hamming() -> None:
    rows = plan_grid(["efficientnet_lite0"], ["pool", "logits"], ["none", "sign", "itq:64"], ["l2", "l1", "hamming"])
    described = {(r.layer, r.binarization.method, r.binarization.bits, r.metric) for r in rows}
    assert len(rows) == 8
    assert ("pool", "itq", 64, "hamming") in described and ("logits", "none", None, "l1") in described
    assert not any(r.binarization.binary != (r.metric == "hamming") for r in rows)


@pytest.mark.parametrize(
    ("binarize", "metrics", "message"),
    [
        (["none"], ["hamming"], "needs metric l2 or l1"),
        (["itq"], ["l2"], "needs metric hamming"),
        (["none", "itq"], ["l2", "cosine"], "unknown metric 'cosine'"),
        (["lsh"], ["hamming"], "unknown binarization 'lsh'"),
        (["itq:many"], ["hamming"], "whole number of bits"),
    ],
)
def test_invalid_combinations_are_refused(binarize, metrics, message) -> None:
    with pytest.raises(ViscoverError, match=message):
        plan_grid(["efficientnet_lite0"], ["pool"], binarize, metrics)


def test_empty_names_are_refused() -> None:
    with pytest.raises(ViscoverError, match="empty name"):
        plan_grid(["efficientnet_lite0"], [""], ["none"], ["l2"])


@pytest.fixture(scope="module")
def study_rows():
    return plan_grid(["efficientnet_lite0"], ["pool"], ["none", "itq"], ["l2", "hamming"])


def test_study_on_real_features_is_reproducible(engine: Engine, study_rows) -> None:
    first = run_study(engine, study_rows, ks=[1, 5], queries=12, seed=7, progress=False)
    again = run_study(engine, study_rows, ks=[1, 5], queries=12, seed=7, progress=False)
    assert format_table(first) == format_table(again)
    assert (first.items, first.queries) == (30, 12)
    raw, binary = first.rows
    assert raw.bytes_per_item == 1280 * 4 and binary.bytes_per_item == binary.bits // 8
    # Five other images per class: P@5 = 1 only if every one of them ranks above the other classes.
    assert raw.scores.precision[1] > 0.8 and 0.5 < raw.scores.precision[5] <= 1


def test_noise_experiment_counts_noise_in_the_top_k(engine: Engine, study_rows) -> None:
    study = run_study(engine, study_rows, ks=[5], queries=10, seed=0, noise=16, progress=False)
    assert all(0 <= r.noise_per_query <= 5 for r in study.rows)
    assert "noise in top 5" in format_table(study)


def test_study_errors(engine: Engine, study_rows, tmp_path: Path) -> None:
    with pytest.raises(NotEnoughDataError, match="K=40 needs more than 40"):
        run_study(engine, study_rows, ks=[40], queries=5, progress=False)
    (tmp_path / "one" / "solo").mkdir(parents=True)
    shutil.copy(caltech_image("ferry", 1), tmp_path / "one" / "solo")
    engine.ingest(tmp_path / "one", progress=False)
    with pytest.raises(ViscoverError, match="single image cannot be queried: solo"):
        run_study(engine, study_rows, queries=5, progress=False)
    with Engine.open(tmp_path / "unlabelled") as empty, pytest.raises(ViscoverError, match="no labelled pins"):
        run_study(empty, study_rows, progress=False)


def test_report_files_and_feature_map(engine: Engine, study_rows, tmp_path: Path) -> None:
    study = run_study(engine, study_rows, ks=[1, 5], queries=10, progress=False)
    written = write_report(study, tmp_path, "viscover eval retrieval X", "Title")
    assert [p.name for p in written] == ["retrieval.md", "retrieval.csv", "retrieval.png"]
    assert "viscover eval retrieval X" in (tmp_path / "retrieval.md").read_text()
    table = list(csv.reader((tmp_path / "retrieval.csv").open()))
    assert table[0][:6] == ["Model", "Layer", "Type", "Dist.", "P@1", "P@5"] and len(table) == 3
    raw, codes, labels = feature_map_sample(engine, study_rows[1], classes=3, noise=4)
    assert len(raw) == len(codes) == len(labels) == 3 * 6 + 4
    assert labels.count("__noise__") == 4 and codes.dtype == np.uint8
    plot_feature_map(raw, codes, labels, tmp_path / "map.png", "test")
    assert (tmp_path / "map.png").stat().st_size > 10_000
