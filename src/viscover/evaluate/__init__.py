"""Evaluation: the paper's offline protocols, scored from the engine's own indexes."""

from viscover.evaluate.retrieval import (
    RetrievalScores,
    average_precision_at_k,
    precision_at_k,
    relevance_matrix,
    sample_queries,
    score_retrieval,
)

__all__ = [
    "RetrievalScores",
    "average_precision_at_k",
    "precision_at_k",
    "relevance_matrix",
    "sample_queries",
    "score_retrieval",
]
