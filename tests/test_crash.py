"""Killing `viscover ingest` and `viscover index` with SIGKILL at random instants never damages the home, and
finishing after the kills gives exactly the state of an uninterrupted run (the harness of
benchmarks/kill_harness.py, with a few kills: docs/results/reliability.md reports the long run)."""

from __future__ import annotations

from benchmarks.kill_harness import run_harness


def test_kills_of_ingest_and_index_lose_nothing_and_finish_as_an_uninterrupted_run() -> None:
    reports = list(run_harness(pins=40, kills=4, jobs=["ingest", "index"], seed=1))
    for report in reports:
        assert report.kills == 4, report
        assert report.damage == [] and report.differences == [], report
        assert report.completions_equal == report.finished_before_kill + 1, report
