"""Pytest fixtures for tests against a real local Redis Cluster (see clusters.py).

Registered from conftest.py with ``pytest_plugins = ["cluster_fixtures"]``.  The
clusters are started by these fixtures, which is what makes FLUSHALL on them safe.
Without ``redis-server`` and ``redis-cli`` on PATH the tests that use them skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from clusters import ClusterUnavailable, LocalCluster
from redis.crc import key_slot


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


def model_on_cluster(cluster: LocalCluster, model: Any) -> Iterator[redis.Redis]:
    """Point IndexedRedis' default connection at ``cluster`` and yield a plain client of
    the node that owns ``model``'s hash slot (for raw assertions); undone afterwards."""
    from IndexedRedis.connection import clearRedisPools, setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": cluster.master_ports()[0], "cluster": True})
    owner = redis.Redis(host="127.0.0.1", port=cluster.owner(key_slot(model._meta.keys.prefix)))
    try:
        yield owner
    finally:
        owner.close()
        clearRedisPools()
