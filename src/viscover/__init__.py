"""viscover: a visual discovery engine after "Visual Discovery at Pinterest" (Zhai et al., 2017).

Data flows ingest → features → index → search; `Engine` composes the stages.
"""

from viscover.config import Settings
from viscover.errors import ViscoverError
from viscover.search import Engine, SearchHit

__all__ = ["Engine", "SearchHit", "Settings", "ViscoverError"]
__version__ = "0.1.0"
