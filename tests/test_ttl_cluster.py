"""Expiry (TTL) on a real Redis Cluster: the expiry zset shares the model's hash slot,
so reads filter and sweeps delete in one script (or MULTI) on one node, sync and async."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from _ttl_models import Session
from cluster_fixtures import model_on_cluster
from clusters import LocalCluster
from consistency import assert_indexes_consistent

from IndexedRedis import acloseRedisConnections


@pytest.fixture
def on_cluster(empty_cluster: LocalCluster) -> Iterator[redis.Redis]:
    yield from model_on_cluster(empty_cluster, Session)


def test_expiry_on_a_cluster(on_cluster: redis.Redis) -> None:
    kept = [Session(user="u", n=i, token=f"k{i}", note="") for i in range(3)]
    Session.saver.save(kept, ttl=600)
    doomed = [Session(user="u", n=10 + i, token=f"d{i}", note="") for i in range(4)]
    Session.saver.save(doomed, ttl=0.001)
    time.sleep(0.05)
    assert Session.objects.filter(user="u").count() == 3
    assert Session.objects.getMultiple([o._id for o in doomed]) == [None] * 4
    assert [o._id for o in Session.objects.orderBy("n").all()] == [o._id for o in kept]
    report = Session.objects.check()
    assert report.ok and report.expired_pending == 4

    async def main() -> int:
        try:
            assert await Session.objects.aget(doomed[0]._id) is None
            return await Session.objects.asweepExpired()
        finally:
            await acloseRedisConnections()

    assert asyncio.run(main()) == 4
    assert Session.objects.check().ok
    assert_indexes_consistent(on_cluster, Session)
    assert on_cluster.hlen(Session._meta.keys.generation(0).objs) == 3
