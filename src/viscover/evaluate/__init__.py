"""Evaluation: the paper's offline protocols, scored from the engine's own indexes."""

from viscover.evaluate.report import format_table, markdown_table, plot_feature_map, plot_precision, write_report
from viscover.evaluate.retrieval import (
    RetrievalScores,
    average_precision_at_k,
    precision_at_k,
    relevance_matrix,
    sample_queries,
    score_retrieval,
)
from viscover.evaluate.study import (
    Binarization,
    GridRow,
    RowResult,
    StudyResult,
    feature_map_sample,
    plan_grid,
    run_study,
)

__all__ = [
    "Binarization",
    "GridRow",
    "RetrievalScores",
    "RowResult",
    "StudyResult",
    "average_precision_at_k",
    "feature_map_sample",
    "format_table",
    "markdown_table",
    "plan_grid",
    "plot_feature_map",
    "plot_precision",
    "precision_at_k",
    "relevance_matrix",
    "run_study",
    "sample_queries",
    "score_retrieval",
    "write_report",
]
