"""Beyond one machine, on Ray (issue 15): batch embedding and detection on Ray Data, and shards of an index
served by Ray actors. Optional (`pip install 'viscover[cluster]'`); nothing in the core imports it."""

from viscover.distributed.batch import Landing, PoolShape, RayRunner, cluster_pool, pool_shape
from viscover.distributed.shard_servers import (
    ClusterPlacement,
    RayShardedIndex,
    ShardServer,
    connect,
    run_on_ray,
    serve_shards,
)

__all__ = [
    "ClusterPlacement",
    "Landing",
    "PoolShape",
    "RayRunner",
    "RayShardedIndex",
    "ShardServer",
    "cluster_pool",
    "connect",
    "pool_shape",
    "run_on_ray",
    "serve_shards",
]
