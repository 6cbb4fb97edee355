"""Fuzzing the public API with hypothesis: KEY_NAMEs and values with ``* : { } \\0``,
non-UTF-8 bytes, lone surrogates and long strings, through save, get, filter, update,
delete and reset.  Each case is an exact round trip or one of IndexedRedis's own
errors; a stray TypeError, a raw ResponseError or a hang fails the test."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import redis
from consistency import assert_indexes_consistent
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from IndexedRedis import IndexedRedisError, IndexedRedisModel, IRBytesField, IRField, SharedKeysWarning, irNull

pytestmark = pytest.mark.timeout(300)

NASTY = st.sampled_from(["*", ":", "{", "}", "\0", "{}", "}{", "*:*", "\\", " ", "é", "\U0001f600", "\ud800"])
key_names = st.lists(st.one_of(NASTY, st.text(min_size=1, max_size=8)), min_size=1, max_size=6).map("".join)
texts = st.one_of(st.text(max_size=40), st.lists(NASTY, max_size=5).map("".join), st.just("x" * 5000))
binaries = st.one_of(st.binary(max_size=40), st.just(b"\xff\xfe\x00{}"), st.just(bytes(range(256))))
numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.just(0))
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _model(key_name: str) -> type[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SharedKeysWarning)  # examples may repeat a KEY_NAME
        return type("Fuzzed", (IndexedRedisModel,), {
            "__module__": __name__,
            "FIELDS": ["text", IRBytesField("raw"), IRField("number", valueType=int),
                       IRField("ratio", valueType=float)],
            "INDEXED_FIELDS": ["text", "raw", "number", "ratio"],
            "KEY_NAME": key_name,
        })


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key_name=key_names, rows=st.lists(st.tuples(st.one_of(texts, st.just(irNull)), binaries, numbers, floats),
                                         min_size=1, max_size=4),
       change=st.one_of(texts, st.just(irNull)))
def test_any_input_round_trips_or_raises_our_error(redis_client: redis.Redis, key_name: str,
                                                   rows: list[tuple[Any, ...]], change: Any) -> None:
    try:
        model = _model(key_name)
    except IndexedRedisError:
        event("KEY_NAME refused")
        return  # refused with our error at definition
    try:
        objs = [model(text=t, raw=b, number=n, ratio=r) for t, b, n, r in rows]
    except IndexedRedisError:
        event("a value refused")
        return
    try:
        for obj in objs:
            obj.save()
    except IndexedRedisError:
        event("a save refused")
        assert_indexes_consistent(redis_client, model)  # a refused save left nothing half-done
        return
    event("saved and read back")
    for obj, (text, raw, number, ratio) in zip(objs, rows):
        got = model.objects.get(obj._id)
        assert got is not None
        assert (got.text, got.raw, got.number, got.ratio) == (text, raw, number, ratio)
        assert obj._id in model.objects.filter(text=text).getPrimaryKeys()
        assert obj._id in model.objects.filter(raw=raw).getPrimaryKeys()
        assert obj._id in model.objects.filter(number=number).getPrimaryKeys()
    first = objs[0]
    try:
        first.text = change
    except IndexedRedisError:
        pass
    else:
        first.save()
        assert model.objects.get(first._id).text == change
        assert first._id in model.objects.filter(text=change).getPrimaryKeys()
    model.reset(objs[1:])
    assert sorted(model.objects.getPrimaryKeys()) == sorted(o._id for o in objs[1:])
    for obj in objs[1:]:
        assert obj.delete() == 1
    assert model.objects.count() == 0
    assert_indexes_consistent(redis_client, model)
