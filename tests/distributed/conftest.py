"""One local two-node Ray cluster for every test of the package (`ray.cluster_utils.Cluster`), with one CPU a
node as on this 2-core machine and a custom resource per node, so work can be pinned to each."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray", reason="the cluster extra: pip install 'viscover[cluster]'")

from ray.cluster_utils import Cluster  # noqa: E402

from viscover.distributed import connect  # noqa: E402


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # this run's own: nothing under ~/.ray
    nodes = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node-a": 1}, "include_dashboard": False}
    )
    nodes.add_node(num_cpus=1, resources={"node-b": 1})
    nodes.wait_for_nodes()
    connect(nodes.address)
    yield nodes
    ray.shutdown()
    nodes.shutdown()
