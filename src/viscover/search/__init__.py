"""Search stage: the `Engine` that composes catalog, features and index, its typed results, and the
object index behind "scenes that contain this object"."""

from viscover.search.engine import Engine, IndexReport, Query, SearchHit
from viscover.search.objects import (
    ObjectsReport,
    SceneHit,
    index_objects,
    load_object_index,
    object_run,
    search_objects,
)

__all__ = [
    "Engine",
    "IndexReport",
    "ObjectsReport",
    "Query",
    "SceneHit",
    "SearchHit",
    "index_objects",
    "load_object_index",
    "object_run",
    "search_objects",
]
