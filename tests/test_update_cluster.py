"""update() with F and save(ifUnchanged=True) on a real Redis Cluster: every key of a
model is in its hash slot, so each batch is still one atomic script on one node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from cluster_fixtures import model_on_cluster
from clusters import LocalCluster
from consistency import assert_indexes_consistent

from IndexedRedis import ConflictError, F, IndexedRedisModel, IRField, UniqueConstraintError, acloseRedisConnections


class Tally(IndexedRedisModel):
    FIELDS = ["group", IRField("n", valueType=int), IRField("code", valueType=int)]
    INDEXED_FIELDS = ["group", "n"]
    UNIQUE_FIELDS = ["code"]
    KEY_NAME = "ClusterTally"


@pytest.fixture
def on_cluster(empty_cluster: LocalCluster) -> Iterator[redis.Redis]:
    yield from model_on_cluster(empty_cluster, Tally)


def test_update_and_if_unchanged_on_a_cluster(on_cluster: redis.Redis) -> None:
    pks = Tally.saver.save([Tally(group="g" if i % 2 else "h", n=i, code=i) for i in range(6)])
    assert Tally.objects.filter(group="g").update(n=F("n") * 10) == 3
    assert Tally.objects.update(code=F("code") + 1) == 6  # unique values shifted in one step
    with pytest.raises(UniqueConstraintError):
        Tally.objects.filter(group="h").update(code=1)
    assert {t._id: (t.n, t.code) for t in Tally.objects.all()} == {
        pk: (i * 10 if i % 2 else i, i + 1) for i, pk in enumerate(pks)}
    mine, theirs = Tally.objects.get(pks[0]), Tally.objects.get(pks[0])
    theirs.n = 99
    theirs.save(ifUnchanged=True)
    mine.n = 42
    with pytest.raises(ConflictError):
        mine.save(ifUnchanged=True)

    async def main() -> int:
        try:
            return await Tally.objects.filter(group="h").aupdate(n=F("n") + 1)
        finally:
            await acloseRedisConnections()

    assert asyncio.run(main()) == 3
    assert Tally.objects.get(pks[0]).n == 100
    assert Tally.objects.check().ok
    assert_indexes_consistent(on_cluster, Tally)
