"""``Model.reset`` of an iterator: the dataset is streamed in batches, one held at a
time, and switched in atomically at the end; a failure part way leaves the old dataset
exactly as it was."""

from __future__ import annotations

import pytest
from _models import ResetItem, UniqueUser, make_dataset
from consistency import assert_indexes_consistent, assert_no_garbage, current_generation, db_snapshot

from IndexedRedis import IndexedRedisError, UniqueConstraintError


def _content(objs):
    return sorted((o.batch, int(o.n), o.parity, o.label) for o in objs)


def test_stream_reset_replaces_the_dataset(redis_client):
    ResetItem.reset(make_dataset("old", 30))
    written = ResetItem.reset((obj for obj in make_dataset("new", 250)), batchSize=40)
    assert written == 250
    assert _content(ResetItem.objects.all()) == _content(make_dataset("new", 250))
    assert ResetItem.objects.filter(batch="old").count() == 0
    assert ResetItem.objects.filter(parity="1").count() == 125
    assert len(set(ResetItem.objects.getPrimaryKeys())) == 250
    assert_indexes_consistent(redis_client, ResetItem)
    assert_no_garbage(redis_client, ResetItem)
    # pks handed out by the stream are never handed out again
    extra = ResetItem(batch="x", n=1, parity=1, label="x")
    assert extra.save() > max(ResetItem.objects.getPrimaryKeys()[:-1])


def test_stream_reset_of_nothing_empties_the_model(redis_client):
    ResetItem.reset(make_dataset("old", 5))
    assert ResetItem.reset(iter([])) == 0
    assert ResetItem.objects.count() == 0
    assert_no_garbage(redis_client, ResetItem)


def _failing(after: int):
    yield from make_dataset("new", after)
    raise RuntimeError("the source went away")


def test_stream_failure_leaves_the_old_dataset_untouched(redis_client):
    ResetItem.reset(make_dataset("old", 20))
    before = db_snapshot(redis_client)
    with pytest.raises(RuntimeError, match="went away"):
        ResetItem.reset(_failing(250), batchSize=50)
    after = db_snapshot(redis_client)
    # only the bookkeeping counters moved; every record and index is as it was
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= {ResetItem._meta.keys.genseq, ResetItem._meta.keys.nextpk}
    assert_no_garbage(redis_client, ResetItem)


def test_stream_refuses_objects_with_pks_and_writes_nothing(redis_client):
    ResetItem.reset(make_dataset("old", 3))
    stored = ResetItem.objects.all()
    gen = current_generation(redis_client, ResetItem)
    with pytest.raises(IndexedRedisError, match=r"ResetItem.reset of an iterator takes new objects only"):
        ResetItem.reset(iter(make_dataset("new", 10) + list(stored)))
    assert current_generation(redis_client, ResetItem) == gen
    assert _content(ResetItem.objects.all()) == _content(make_dataset("old", 3))
    assert_no_garbage(redis_client, ResetItem)


def test_stream_checks_unique_values_across_batches_on_the_server(redis_client):
    UniqueUser.reset([UniqueUser(email="keep@x", badge=1, name="keep")])
    users = [UniqueUser(email=f"u{i}@x", badge=i, name="n") for i in range(30)]
    users.append(UniqueUser(email="u3@x", badge=99, name="dup"))  # clashes with a batch written earlier
    with pytest.raises(UniqueConstraintError, match="email must be unique") as caught:
        UniqueUser.reset(iter(users), batchSize=8)
    assert caught.value.field == "email"
    assert [u.email for u in UniqueUser.objects.all()] == ["keep@x"]
    assert_no_garbage(redis_client, UniqueUser)
    # within one batch too
    with pytest.raises(UniqueConstraintError, match="badge must be unique"):
        UniqueUser.reset(iter([UniqueUser(email="a@x", badge=5, name="a"), UniqueUser(email="b@x", badge=5, name="b")]))
    assert [u.email for u in UniqueUser.objects.all()] == ["keep@x"]


async def _areset(objs):
    from IndexedRedis import acloseRedisConnections

    try:
        return await ResetItem.areset(objs, batchSize=33)
    finally:
        await acloseRedisConnections()


def test_async_stream_reset(redis_client):
    import asyncio

    assert asyncio.run(_areset(obj for obj in make_dataset("a", 100))) == 100
    assert _content(ResetItem.objects.all()) == _content(make_dataset("a", 100))
    assert_indexes_consistent(redis_client, ResetItem)
