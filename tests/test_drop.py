"""A full drop, ``destroyModel(full=True)``: afterwards no key of the model is left,
bookkeeping included (a SCAN of its prefix finds nothing), whatever resets left behind,
and other models are untouched.  A plain ``destroyModel()`` keeps the bookkeeping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from IndexedRedis import IndexedRedisModel, IRField, setDefaultRedisConnectionParams
from IndexedRedis.connection import SYNC_ROUTER
from IndexedRedis.drivers import runner
from IndexedRedis.flows.context import Context
from IndexedRedis.flows.reset import reset_flow


class Drops(IndexedRedisModel):
    FIELDS = ["name", IRField("size", valueType=int), IRField("maybe", valueType=int), "note"]
    INDEXED_FIELDS = ["name", "size", "maybe"]
    UNIQUE_FIELDS = ["note"]
    KEY_NAME = "Drops"


class Neighbour(IndexedRedisModel):
    FIELDS = ["name"]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "Drops2"  # a name the first one begins


def _keys(client: redis.Redis, model: type[Any]) -> list[bytes]:
    return sorted(client.scan_iter(match=model._meta.keys.pattern, count=1000))


def _objects(count: int, start: int = 0) -> list[Drops]:
    return [Drops(name=f"n{i % 7}", size=i, maybe=None if i % 3 else i, note=f"u{i}")
            for i in range(start, start + count)]


def _killed_reset(count: int) -> None:
    """A reset whose process died after writing a few batches: its staging generation,
    under a lease, stays (as a SIGKILL leaves it)."""
    client = Drops._get_client()
    flow = reset_flow(Context(Drops._meta, client, SYNC_ROUTER), _objects(count, 1000), batch_size=10)
    request = next(flow)
    for _ in range(5):  # sweep, begin, then batches
        request = flow.send(runner._sync_executor(client)(client, request))
    _abandoned.append(flow)  # never resumed nor closed: no clean-up runs, as when the process is killed


_abandoned: list[Any] = []


def _full_state(client: redis.Redis) -> None:
    """Every kind of key a model gets: generations, indexes, counters, schemas, a dead
    generation waiting to be freed, a killed reset's staging one, refresh records."""
    Drops.reset(_objects(60))
    Drops.reset(_objects(40, 100))
    Drops.saver.saveMultiple(_objects(10, 500))
    one = Drops.objects.filter(name="n1").first()
    one.size = 9999
    one.save()
    Drops.objects.filter(name="n2").delete()
    _killed_reset(200)
    keys = Drops._meta.keys
    client.set(keys.refresh_lease, b"token")  # as a refresh job leaves them
    client.hset(keys.refresh_state, "digest", "x")
    client.sadd(keys.dead, 424242)  # a generation being freed (nothing of it left)
    kinds = {Drops._meta.keys.classify(key).kind for key in _keys(client, Drops)}
    assert {"gen", "genseq", "staging", "nextpk", "schemas", "lastreset", "refresh_lease", "refresh_state", "dead",
            "objs", "ids", "value", "null", "score"} <= kinds, kinds
    assert client.zcard(keys.staging) == 1


def test_a_full_drop_leaves_no_key_of_the_model(redis_client: redis.Redis) -> None:
    Neighbour.reset([Neighbour(name=f"x{i}") for i in range(5)])
    neighbour = {key: redis_client.dump(key) for key in _keys(redis_client, Neighbour)}
    _full_state(redis_client)
    live = Drops.objects.count()
    assert live > 40
    assert Drops.deleter.destroyModel(full=True) == live  # the live objects (the killed reset freed too)
    assert _keys(redis_client, Drops) == []
    assert {key: redis_client.dump(key) for key in _keys(redis_client, Neighbour)} == neighbour
    assert Neighbour.objects.count() == 5
    # as if never stored: queries answer empty, and the next save takes pk 1 again
    assert Drops.objects.count() == 0 and Drops.objects.filter(name="n1").all() == []
    assert Drops(name="again", size=1, note="u1").save() == 1
    assert Drops.objects.filter(note="u1").count() == 1


def test_a_plain_destroy_keeps_the_bookkeeping(redis_client: redis.Redis) -> None:
    Drops.reset(_objects(20))
    assert Drops.deleter.destroyModel() == 20
    left = {Drops._meta.keys.classify(key).kind for key in _keys(redis_client, Drops)}
    assert left and left <= {"gen", "genseq", "nextpk", "schemas", "lastreset", "staging", "dead"}, left
    assert Drops.deleter.destroyModel(full=True) == 0
    assert _keys(redis_client, Drops) == []


def test_a_full_drop_async(redis_client: redis.Redis) -> None:
    _full_state(redis_client)
    live = Drops.objects.count()
    assert asyncio.run(Drops.deleter.adestroyModel(full=True)) == live
    assert _keys(redis_client, Drops) == []


def test_a_full_drop_of_nothing(redis_client: redis.Redis) -> None:
    assert Drops.deleter.destroyModel(full=True) == 0
    assert _keys(redis_client, Drops) == []


def test_the_killed_reset_fails_cleanly_afterwards(redis_client: redis.Redis) -> None:
    """A reset still running when the drop came finds its generation gone at its next
    batch and raises, leaving nothing behind."""
    from IndexedRedis import ConcurrencyError

    Drops.reset(_objects(30))
    client = Drops._get_client()
    flow = reset_flow(Context(Drops._meta, client, SYNC_ROUTER), _objects(100, 1000), batch_size=10)
    execute = runner._sync_executor(client)
    request = next(flow)
    for _ in range(4):
        request = flow.send(execute(client, request))
    Drops.deleter.destroyModel(full=True)
    with pytest.raises(ConcurrencyError):
        while True:
            request = flow.send(execute(client, request))
    assert _keys(redis_client, Drops) == []


@pytest.mark.timeout(120)
def test_a_full_drop_on_a_cluster(empty_cluster: Any) -> None:
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": empty_cluster.master_ports()[0], "cluster": True})
    Drops.reset(_objects(50))
    Drops.reset(_objects(30, 100))
    Neighbour.reset([Neighbour(name="x")])
    assert Drops.deleter.destroyModel(full=True) == 30
    for port in empty_cluster.master_ports():
        node = redis.Redis(host="127.0.0.1", port=port)
        assert list(node.scan_iter(match=Drops._meta.keys.pattern, count=1000)) == []
        node.close()
    assert Neighbour.objects.count() == 1
