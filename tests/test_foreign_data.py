"""Data written by something else under a model's keys: clear errors naming the
model, never a msgpack or Lua trace, and nothing written by a refused write."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IndexedRedis import CorruptRecordError, IndexedRedisModel


class Foreign(IndexedRedisModel):
    FIELDS = ["a", "b"]
    INDEXED_FIELDS = ["a"]
    KEY_NAME = "ForeignData"


def _objs_key() -> bytes:
    return Foreign._meta.keys.generation(0).objs


def _snapshot(client: redis.Redis) -> dict[bytes, Any]:
    return {key: client.dump(key) for key in sorted(client.scan_iter(count=1000))}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=0, max_size=60))
def test_a_record_that_is_not_ours_gives_a_clear_error_on_every_path(redis_client: redis.Redis,
                                                                      garbage: bytes) -> None:
    redis_client.flushdb()
    Foreign(a="x", b="kept").save()
    Foreign(a="x", b="other").save()
    try:
        valid = Foreign._meta.codec.records([garbage])  # some bytes happen to be a record of ours
    except Exception:
        valid = None
    if valid is not None:
        return
    redis_client.hset(_objs_key(), 1, garbage)
    before = _snapshot(redis_client)
    for read in (lambda: Foreign.objects.get(1), lambda: Foreign.objects.filter(a="x").all(),
                 lambda: Foreign.objects.all(), lambda: list(Foreign.objects.iterate())):
        with pytest.raises(CorruptRecordError, match="Model Foreign: .*not IndexedRedis data"):
            read()
    stale = Foreign(a="y", b="new")
    stale._id = 1  # an update of the foreign record: the script reads it before writing
    stale._orig = {"a": "x", "b": "kept"}
    with pytest.raises(CorruptRecordError, match="Model Foreign: .*nothing was written"):
        stale.save()
    with pytest.raises(CorruptRecordError, match="Model Foreign"):
        Foreign.deleter.deleteByPk(1)
    assert _snapshot(redis_client) == before
    assert Foreign.objects.get(2).b == "other"  # the rest reads as ever


def test_an_index_key_of_another_type_is_named(redis_client: redis.Redis) -> None:
    redis_client.set(Foreign._meta.keys.generation(0).index("a", b"z"), b"not a set")
    with pytest.raises(CorruptRecordError, match="Model Foreign: a key under the model's prefix holds another type"):
        Foreign(a="z", b="b").save()


def test_a_huge_value_round_trips(redis_client: redis.Redis) -> None:
    value = "v" * 20_000_000
    pk = Foreign(a="big", b=value).save()
    assert Foreign.objects.get(pk).b == value
    assert Foreign.objects.filter(a="big").count() == 1
