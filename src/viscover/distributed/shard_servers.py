"""Shards of an index built by Ray tasks and served from Ray actors (issue 15): each actor holds some shards of
an index written by `viscover shard` (FAISS files), a query's codes go to every actor at once, and the answers
are merged by (distance, key), as `ShardedIndex` merges them in one process. `RayShardedIndex` has the same
interface as a `VectorIndex` of codes, so a `VisualIndex` over it serves every search route unchanged.

Each actor searches with one FAISS/OpenMP thread (oversubscribed threads were measured 14-29x slower on shared
cores) and reserves only a token share of a CPU, so shard servers of several index generations never take the
CPUs other tasks need (a dataset's readers: ray-project/ray#44687).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray

from viscover.errors import BadArgumentError, BadSettingError, ShardUnavailableError
from viscover.index.shards import MANIFEST, merge_nearest, read_shards, shard_index
from viscover.index.store import Generation
from viscover.index.visual_index import VisualIndex
from viscover.threads import limit_threads

SERVER_CPUS = 0.05  # the logical CPU share a shard server reserves: it computes on one thread
ADDRESS_TIMEOUT_S = 5.0  # a cluster address that accepts no connection in this time is refused
SEARCH_TIMEOUT_S = 10.0  # a shard server slower than this counts as down
BUILD_CPUS = 0.25  # the logical CPU share a shard build task reserves: it reads Parquet and adds codes
RESTARTS = -1  # a shard server that dies is started again, as often as it takes (it reloads its shards)


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at `address`, or start a local Ray on this machine when None (once per process).

    Ray 2.60 turns token authentication on. A local Ray started here gets a fresh token for this process only
    (`RAY_AUTH_TOKEN`), so nothing is written under the user's home; to join a running cluster, give its token
    in `RAY_AUTH_TOKEN` or `~/.ray/auth_token`, as Ray itself reads them."""
    if ray.is_initialized():
        return
    if address is not None:
        _check_answers(address)
    try:
        if address is None:
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
            ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # Ray raises ConnectionError, AuthenticationError, RuntimeError, ...
        where = "a local Ray" if address is None else f"the Ray cluster at {address!r}"
        raise BadSettingError(
            f"cluster: cannot start or join {where} ({type(exc).__name__}: {exc}); check the address and the "
            "cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        ) from None


def _check_answers(address: str) -> None:
    """Refuse at once a HOST:PORT where nothing listens: Ray itself retries such an address for minutes."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # `auto` and `ray://` client addresses: Ray resolves them itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as exc:
        raise BadSettingError(
            f"cluster: nothing answers at {address!r} ({exc.strerror or exc}); give the head node's address as "
            "HOST:PORT (`ray status` on the head node shows it)"
        ) from None


def run_on_ray(task: Callable[..., Any], calls: Sequence[tuple]) -> list[Any]:
    """Run `task(*call)` for each call as a Ray task of its own (`write_shards`' task runner on a cluster)."""
    remote = ray.remote(num_cpus=BUILD_CPUS)(task)
    refs = [remote.remote(*call) for call in calls]
    ray.wait(refs, num_returns=len(refs))  # all ended, before a failure removes the folder they write in
    return ray.get(refs)


@ray.remote(max_restarts=RESTARTS)
class ShardServer:
    """Some shards of an index, searched together on one actor."""

    def __init__(self, directory: str, shards: list[int], count: int) -> None:
        limit_threads(1)
        # a restarted server reads the files again: they must still be the split it was started for
        self.index = read_shards(Path(directory), only=shards, count=count).codes

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
    """The sharded index under `directory`, its shards spread over `servers` actors (default: one per shard)
    on the connected Ray cluster, each loaded before this returns; the binarizer stays in this process. With
    `resources`, server n asks for a little of the custom resource `resources[n]` (a node's label: pins it there)."""
    local = read_shards(directory, only=[])  # checks the manifest; the binarizer, no shard
    manifest = json.loads((directory / MANIFEST).read_text())
    count = manifest["shards"]
    servers = servers or count
    if not 1 <= servers <= count:
        raise BadArgumentError(f"servers must be from 1 to the {count} shards, got {servers}")
    if resources is not None and len(resources) != servers:
        raise BadArgumentError(f"give one resource per server: {servers} servers, {len(resources)} resources")
    handles = [
        ShardServer.options(num_cpus=SERVER_CPUS, resources={resources[n]: 0.01} if resources else None).remote(
            str(directory), list(range(n, count, servers)), count
        )
        for n in range(servers)
    ]
    ray.get([handle.node.remote() for handle in handles])  # every shard loaded before any search is sent
    codes = RayShardedIndex(local.codes.spec, local.codes.dim, handles, manifest["pins"])
    return VisualIndex(local.model, local.binarizer, codes, local.fitted_on)


class ClusterPlacement:
    """A `Searcher`'s placement for a cluster: each newly published index is split into shards (once, under
    HOME/index/shards/KIND-GENERATION, by Ray tasks from its codes landed by shard) and served by Ray actors.
    The actors and shard files of a generation two back are let go, as the index store keeps the files of the
    previous generation for readers on it."""

    def __init__(self, home: Path, directory: Path, shards: int, address: str | None) -> None:
        connect(None if address == "local" else address)
        self.home, self.directory, self.shards = home, directory, shards
        self._served: dict[str, list[tuple[Path, RayShardedIndex]]] = {}
        self._lock = threading.Lock()

    def __call__(self, generation: Generation, kind: str, index: VisualIndex) -> VisualIndex:
        folder = self.directory / f"{kind}-{generation.number}"
        if not (folder / MANIFEST).is_file():
            shard_index(index, generation.name(kind), self.home, folder, self.shards, run_on_ray)
        served = serve_shards(folder)
        with self._lock:
            before = self._served.get(kind, [])
            self._served[kind] = [*before, (folder, served.codes)][-2:]
            for old_folder, old in before[:-1]:
                for server in old.servers:
                    ray.kill(server)
                shutil.rmtree(old_folder, ignore_errors=True)
        return served
