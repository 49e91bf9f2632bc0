"""viscover: a visual discovery engine after "Visual Discovery at Pinterest" (Zhai et al., 2017).

Data flows ingest → features → index → search. `Engine` is the facade over a home (the single writer, and
search); `Searcher` is the read path that many threads share; queries are `PinQuery`, `BytesQuery` or
`ImageQuery`, optionally with a crop `Box`.
"""

from viscover.box import Box
from viscover.config import Settings
from viscover.errors import ViscoverError
from viscover.search import BytesQuery, Engine, ImageQuery, PinQuery, Searcher, SearchHit

__all__ = [
    "Box",
    "BytesQuery",
    "Engine",
    "ImageQuery",
    "PinQuery",
    "SearchHit",
    "Searcher",
    "Settings",
    "ViscoverError",
]
__version__ = "0.2.0"
