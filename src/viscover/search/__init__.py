"""Search stage: the read path (`Searcher`: typed queries, one result type, snapshots that follow the
writer) and the write path's facade (`Engine`), with the object index behind "scenes that contain this
object", and what results say beyond themselves (`Insight`: annotations, object dots)."""

from viscover.search.annotations import Annotation
from viscover.search.engine import BatchRunner, Engine, IndexReport
from viscover.search.insight import Dot, DotThresholds, Insight, write_thresholds
from viscover.search.objects import DetectedPin, ObjectsReport, detect_pin, index_objects, object_run
from viscover.search.queries import BytesQuery, ImageQuery, PinQuery, Query
from viscover.search.results import SearchHit, relative_scores, similarity
from viscover.search.searcher import Searcher, Snapshot, check_k

__all__ = [
    "Annotation",
    "BatchRunner",
    "BytesQuery",
    "DetectedPin",
    "Dot",
    "DotThresholds",
    "Engine",
    "ImageQuery",
    "IndexReport",
    "Insight",
    "ObjectsReport",
    "PinQuery",
    "Query",
    "SearchHit",
    "Searcher",
    "Snapshot",
    "check_k",
    "detect_pin",
    "index_objects",
    "object_run",
    "relative_scores",
    "similarity",
    "write_thresholds",
]
