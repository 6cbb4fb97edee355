"""The ids zset in blocks of 64 pks (``scripts/lib.lua``), on a real server.

A generation's pks are kept as one sorted-set member per block of 64 consecutive pks
(its bitmap, then the block number), not one member per pk.  Every query that walks
the pks in order (pages, ``first`` / ``last``, ``iterate``, ``ne``, ``all``), counts
them or picks one at random reads them from there.  These tests check the layout
itself (``consistency.stored_ids`` decodes it independently of the Lua) and every
such query against plain Python, for pks dense and sparse, on both sides of block
boundaries and up to ``keys.MAX_PK``.
"""

from __future__ import annotations

from typing import Any

import redis
from consistency import assert_indexes_consistent, current_generation, stored_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IndexedRedis import IndexedRedisModel, IRField
from IndexedRedis.keys import MAX_PK


class Blocky(IndexedRedisModel):
    FIELDS = ["tag", IRField("n", valueType=int)]
    INDEXED_FIELDS = ["tag", "n"]
    KEY_NAME = "IdsBlocksTest"


def _ids_key(client: redis.Redis) -> bytes:
    return Blocky._meta.keys.generation(current_generation(client, Blocky)).ids


def _save(pks: list[int]) -> None:
    for pk in pks:
        Blocky(tag="even" if pk % 2 == 0 else "odd", n=pk % 5, _id=pk).save()


def _pks(objs: Any) -> list[int]:
    return [o._id for o in objs]


def test_a_block_holds_64_pks_and_goes_when_empty(redis_client: redis.Redis) -> None:
    Blocky.reset([])
    _save([0, 1, 63, 64, 127, 128])
    key = _ids_key(redis_client)
    members = redis_client.zrange(key, 0, -1, withscores=True)
    assert [(m[8:], s) for m, s in members] == [(b"0", 0.0), (b"1", 1.0), (b"2", 2.0)]
    assert members[0][0][:8] == (1 | 2 | 1 << 63).to_bytes(8, "little")
    assert stored_ids(redis_client, key) == {0, 1, 63, 64, 127, 128}
    for pk in (64, 127):
        Blocky.objects.get(pk).delete()
    assert [m[8:] for m in redis_client.zrange(key, 0, -1)] == [b"0", b"2"]  # block 1 emptied: removed
    Blocky.deleter.deleteByPk(128)
    assert [m[8:] for m in redis_client.zrange(key, 0, -1)] == [b"0"]
    Blocky.objects.delete()
    assert not redis_client.exists(key)


def test_a_reset_writes_a_few_members_for_many_pks(redis_client: redis.Redis) -> None:
    pks = Blocky.reset([Blocky(tag="t", n=i % 5) for i in range(5000)])
    key = _ids_key(redis_client)
    assert stored_ids(redis_client, key) == set(pks)
    blocks = {pk // 64 for pk in pks}
    assert redis_client.zcard(key) == len(blocks) <= 5000 // 64 + 2
    assert Blocky.objects.count() == 5000
    assert _pks(Blocky.objects.all()) == sorted(pks)
    # full blocks (a run of 64) both ways, whole and paged
    assert _pks(Blocky.objects.orderBy("-_id").all()) == sorted(pks, reverse=True)
    assert _pks(Blocky.objects.orderBy("-_id")[0:150]) == sorted(pks, reverse=True)[:150]
    assert _pks(Blocky.objects.all()[100:250]) == sorted(pks)[100:250]
    assert _pks(Blocky.objects.filter(n__ne=0).all()) == sorted(pk for pk, i in zip(pks, range(5000)) if i % 5)
    assert _pks(Blocky.objects.iterate(batchSize=333)) == sorted(pks)
    assert_indexes_consistent(redis_client, Blocky)


PKS = st.one_of(st.integers(0, 300), st.integers(MAX_PK - 200, MAX_PK), st.integers(0, MAX_PK),
                st.integers(0, 4).map(lambda k: 64 * k + 63), st.integers(1, 4).map(lambda k: 64 * k))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(saved=st.lists(PKS, min_size=0, max_size=60, unique=True), gone=st.data(),
       page=st.integers(1, 70))
def test_every_pk_walk_agrees_with_python(redis_client: redis.Redis, saved: list[int], gone: Any, page: int) -> None:
    Blocky.reset([])
    _save(saved)
    deleted = gone.draw(st.lists(st.sampled_from(saved), unique=True) if saved else st.just([]))
    for pk in deleted:
        Blocky.deleter.deleteByPk(pk)
    live = sorted(set(saved) - set(deleted))
    assert stored_ids(redis_client, _ids_key(redis_client)) == set(live)
    q = Blocky.objects
    assert _pks(q.all()) == live
    assert q.count() == len(live)
    assert _pks(q.all()[0:page]) == live[:page]
    assert _pks(q.orderBy("-_id")[0:page]) == list(reversed(live))[:page]
    assert _pks(q.orderBy("-_id").all()) == list(reversed(live))
    assert (q.first()._id if live else None) == (live[0] if live else None)
    assert (q.last()._id if live else None) == (live[-1] if live else None)
    assert _pks(q.iterate(batchSize=7)) == live
    assert _pks(q.filter(tag__ne="odd").all()) == [pk for pk in live if pk % 2 == 0]
    assert _pks(q.filter(tag__ne="odd").all()[0:page]) == [pk for pk in live if pk % 2 == 0][:page]
    assert sorted(q.getPrimaryKeys()) == live
    if live:
        assert q.random()._id in live
    else:
        assert q.random() is None
    assert_indexes_consistent(redis_client, Blocky)
    assert Blocky.objects.check().ok
