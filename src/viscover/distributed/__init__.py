"""Beyond one machine, on Ray (issue 15): shards of an index served by Ray actors. Optional
(`pip install 'viscover[cluster]'`); nothing in the core imports it."""

from viscover.distributed.shard_servers import ClusterPlacement, RayShardedIndex, ShardServer, connect, serve_shards

__all__ = ["ClusterPlacement", "RayShardedIndex", "ShardServer", "connect", "serve_shards"]
