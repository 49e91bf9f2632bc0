"""Search stage: the `Engine` that composes catalog, features and index, and its typed results."""

from viscover.search.engine import Engine, IndexReport, Query, SearchHit

__all__ = ["Engine", "IndexReport", "Query", "SearchHit"]
