"""Search served from Ray actors (issue 15): each actor holds some shards of an index written by `viscover shard`
(memory-mapped FAISS files), a query's codes go to every actor at once, and the answers are merged by (distance,
key), as `ShardedIndex` merges them in one process. `RayShardedIndex` has the same interface as a `VectorIndex`
of codes, so a `VisualIndex` over it serves every search route unchanged.

Each actor pins FAISS, ONNX Runtime and PyTorch to its CPU share (oversubscribed OpenMP threads were measured
14-29x slower on shared cores), and the actors together ask for less than the cluster's CPUs, so other tasks
(a dataset's readers, ray-project/ray#44687) still get scheduled.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import ray

from viscover.errors import BadArgumentError, ShardUnavailableError
from viscover.index.shards import MANIFEST, merge_nearest, read_shards, write_shards
from viscover.index.store import Generation
from viscover.index.visual_index import VisualIndex
from viscover.threads import limit_threads

SHARE_OF_CPUS = 0.5  # of the cluster's CPUs, the most the shard servers ask for together
SEARCH_TIMEOUT_S = 10.0  # a shard server slower than this counts as down
RESTARTS = -1  # a shard server that dies is started again, as often as it takes (it reloads its shards)


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at `address`, or start a local Ray on this machine when None (once per process).

    Ray 2.60 turns token authentication on. A local Ray started here gets a fresh token for this process only
    (`RAY_AUTH_TOKEN`), so nothing is written under the user's home; to join a running cluster, give its token
    in `RAY_AUTH_TOKEN` or `~/.ray/auth_token`, as Ray itself reads them."""
    if ray.is_initialized():
        return
    if address is None:
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)


@ray.remote(max_restarts=RESTARTS)
class ShardServer:
    """Some shards of an index, searched together on one actor."""

    def __init__(self, directory: str, shards: list[int], threads: int) -> None:
        limit_threads(threads)
        self.index = read_shards(Path(directory), only=shards).codes

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        limit_threads(1)  # in whichever worker thread runs the call
        return self.index.search(codes, k)

    def ids(self) -> np.ndarray:
        return self.index.ids()

    def node(self) -> str:
        """The id of the Ray node this server runs on."""
        return ray.get_runtime_context().get_node_id()


class RayShardedIndex:
    """Binary codes held by Ray actors, searched by scatter-gather; the interface of a `VectorIndex`."""

    metric = "hamming"
    binary = True

    def __init__(self, spec: str, dim: int, servers: Sequence[ray.actor.ActorHandle], size: int) -> None:
        self.spec, self.dim, self.servers, self._size = spec, dim, list(servers), size

    def __len__(self) -> int:
        return self._size

    def ids(self) -> np.ndarray:
        return np.concatenate(ray.get([server.ids.remote() for server in self.servers]))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, keys), each (Q, k), nearest first and by key among equals, from every server at once."""
        codes = np.ascontiguousarray(queries, dtype=np.uint8)
        try:
            parts = ray.get([server.search.remote(codes, k) for server in self.servers], timeout=SEARCH_TIMEOUT_S)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            # never answer from the other shards alone: the results would be silently short
            raise ShardUnavailableError(f"a shard server did not answer ({type(exc).__name__}); try again") from None
        return merge_nearest(parts, len(codes), min(k, self._size))


def serve_shards(directory: Path, servers: int | None = None, resources: Sequence[str] | None = None) -> VisualIndex:
    """The sharded index under `directory`, its shards spread over `servers` actors (default: one per shard,
    at most one per CPU share) on the connected Ray cluster; the binarizer stays in this process. With
    `resources`, server n asks for a little of the custom resource `resources[n]` (a node's label: pins it there)."""
    local = read_shards(directory, only=[])  # checks the manifest; the binarizer, no shard
    manifest = json.loads((directory / MANIFEST).read_text())
    count = manifest["shards"]
    budget = SHARE_OF_CPUS * ray.cluster_resources().get("CPU", 1)
    servers = servers or max(1, min(count, math.floor(budget / 0.25)))
    if not 1 <= servers <= count:
        raise BadArgumentError(f"servers must be from 1 to the {count} shards, got {servers}")
    if resources is not None and len(resources) != servers:
        raise BadArgumentError(f"give one resource per server: {servers} servers, {len(resources)} resources")
    share = budget / servers  # each server's CPU share: together half the cluster's CPUs
    handles = [
        ShardServer.options(num_cpus=share, resources={resources[n]: 0.01} if resources else None).remote(
            str(directory), list(range(n, count, servers)), max(1, int(share))
        )
        for n in range(servers)
    ]
    codes = RayShardedIndex(local.codes.spec, local.codes.dim, handles, manifest["pins"])
    return VisualIndex(local.model, local.binarizer, codes, local.fitted_on)


class ClusterPlacement:
    """A `Searcher`'s placement for a cluster: each newly published index is split into shards (once, under
    HOME/index/shards/KIND-GENERATION) and served by Ray actors; the actors of a generation two back are let
    go, as the index store keeps the files of the previous generation for readers still on it."""

    def __init__(self, directory: Path, shards: int, address: str | None) -> None:
        connect(None if address == "local" else address)
        self.directory, self.shards = directory, shards
        self._served: dict[str, list[RayShardedIndex]] = {}

    def __call__(self, generation: Generation, kind: str, index: VisualIndex) -> VisualIndex:
        folder = self.directory / f"{kind}-{generation.number}"
        if not (folder / MANIFEST).is_file():
            write_shards(index, folder, min(self.shards, max(1, len(index.codes))))
        served = serve_shards(folder)
        kept = [*self._served.get(kind, []), served.codes][-2:]
        for old in self._served.get(kind, []):
            if old not in kept:
                for server in old.servers:
                    ray.kill(server)
        self._served[kind] = kept
        return served
