"""Pytest fixtures for tests against a real local Redis Cluster (see clusters.py).

Registered from conftest.py with ``pytest_plugins = ["cluster_fixtures"]``.  The
clusters are started by these fixtures, which is what makes FLUSHALL on them safe.
Without ``redis-server`` and ``redis-cli`` on PATH the tests that use them skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clusters import ClusterUnavailable, LocalCluster


def _started(replicas: int, executable: str | None = None) -> Iterator[LocalCluster]:
    try:
        cluster = LocalCluster(masters=3, replicas=replicas, executable=executable).start()
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """Three masters without replicas, for the whole session (start-up takes seconds)."""
    yield from _started(replicas=0)


@pytest.fixture(scope="session")
def redis_cluster_with_replicas() -> Iterator[LocalCluster]:
    """Three masters with one replica each, for failover tests; started only if asked for."""
    yield from _started(replicas=1)


@pytest.fixture
def empty_cluster(redis_cluster: LocalCluster) -> LocalCluster:
    """``redis_cluster`` repaired from whatever the previous test did (dead nodes,
    half-done migrations) and emptied."""
    redis_cluster.heal()
    redis_cluster.flushall()
    return redis_cluster
