"""Clear failures for the traps a newcomer hits: Redis down, two models on one
KEY_NAME, a field that cannot be indexed."""

from __future__ import annotations

import asyncio
import re
import time
import warnings

import pytest
import redis

from IndexedRedis import (
    IndexedRedisModel,
    InvalidModelException,
    IRField,
    ServerTimeoutError,
    ServerUnavailableError,
    SharedKeysWarning,
    setDefaultRedisConnectionParams,
)
from IndexedRedis.embedded import free_port


class Down(IndexedRedisModel):
    FIELDS = ["name"]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "DownItems"


def test_a_server_that_is_down_is_named_with_the_model() -> None:
    port = free_port()  # nothing listens there
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": port, "socket_connect_timeout": 1,
                                     "retry": Retry(NoBackoff(), 0)})
    with pytest.raises(ServerUnavailableError, match=rf"Model Down: Redis at 127\.0\.0\.1:{port}/0: .*{port}") as err:
        Down.objects.filter(name="x").all()
    assert isinstance(err.value, redis.ConnectionError)  # code catching redis-py's error still does
    with pytest.raises(ServerUnavailableError, match="Model Down"):
        Down(name="x").save()
    with pytest.raises(ServerUnavailableError, match="Model Down"):
        asyncio.run(Down.objects.acount())


def test_a_server_that_does_not_answer_in_time_is_named_too(redis_client: redis.Redis, redis_url: str) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    setDefaultRedisConnectionParams({"url": redis_url, "socket_timeout": 0.3, "retry": Retry(NoBackoff(), 0)})
    Down.objects.count()  # connected, checked
    blocker = redis.Redis.from_url(redis_url)
    import threading

    busy = "local t = redis.call('TIME') local s = t[1] + 1 while tonumber(redis.call('TIME')[1]) <= s do end return 1"
    sleeper = threading.Thread(target=lambda: blocker.eval(busy, 0))  # the server runs nothing else meanwhile
    sleeper.start()
    time.sleep(0.2)
    try:
        with pytest.raises((ServerTimeoutError, ServerUnavailableError), match="Model Down: Redis at"):
            Down.objects.count()
    finally:
        sleeper.join()
        blocker.close()
    assert Down.objects.count() == 0  # and it works again


def test_two_unrelated_models_on_one_key_name_are_warned_about() -> None:
    class First(IndexedRedisModel):
        FIELDS = ["a"]
        KEY_NAME = "SharedKeyName"

    with warnings.catch_warnings():
        warnings.simplefilter("error", SharedKeysWarning)
        First.copyModel()  # derived: fine
        First.connectAlt({"db": 3})

        class OtherServer(IndexedRedisModel):  # same KEY_NAME, other params: fine
            FIELDS = ["a"]
            KEY_NAME = "SharedKeyName"
            REDIS_CONNECTION_PARAMS = {"db": 4}

    with pytest.warns(SharedKeysWarning, match=r"Second .* uses the keys of model .*First.*KEY_NAME 'SharedKeyName'"):
        class Second(IndexedRedisModel):
            FIELDS = ["b"]
            KEY_NAME = "SharedKeyName"


def test_a_field_that_cannot_be_indexed_says_why() -> None:
    with pytest.raises(InvalidModelException, match=r"field 'data' \(IRField of dict\) cannot be indexed: its stored "
                                                    r"form does not identify its value"):
        class Indexed(IndexedRedisModel):
            FIELDS = [IRField("data", valueType=dict)]
            INDEXED_FIELDS = ["data"]
            KEY_NAME = "CannotIndex"


@pytest.mark.parametrize("bad", ["abc", "", "1.5", -1, 2.5, True, None, b"\xff", [1], "1e3"])
def test_a_pk_that_is_not_one_is_refused_naming_the_model(bad: object) -> None:
    from IndexedRedis import InvalidQueryError

    Down.reset([Down(name="one")])
    expected = rf"Model Down: a primary key is a non-negative int or its decimal text \(like 12 or '12'\); " \
               rf"got {re.escape(repr(bad))}"
    calls = [lambda: Down.objects.get(bad), lambda: Down.objects.getMultiple([1, bad]),
             lambda: Down.objects.getOnlyFields(bad, ["name"]), lambda: Down.deleter.deleteByPk(bad),
             lambda: asyncio.run(Down.objects.aget(bad)),
             lambda: asyncio.run(Down.objects.agetMultiple([bad]))]
    if bad is not None:  # exists() without a pk asks whether anything matches
        calls.append(lambda: Down.objects.exists(bad))
    for call in calls:
        with pytest.raises(InvalidQueryError, match=expected) as err:
            call()
        assert isinstance(err.value, ValueError)
    assert Down.objects.count() == 1  # nothing was deleted


def test_pks_as_text_still_work() -> None:
    pk = Down(name="text").save()
    assert Down.objects.get(str(pk)).name == "text" and Down.objects.get(float(pk)).name == "text"
    assert [obj.name for obj in Down.objects.getMultiple([str(pk), pk])] == ["text", "text"]
    assert Down.objects.get(str(pk + 100)) is None


def test_with_the_6x_switch_a_get_of_a_non_pk_finds_nothing() -> None:
    """6.x looked the text up as a key name and found no object: code relying on that
    (a web handler's ``get(request_id) or 404``) keeps working, warned."""
    from IndexedRedis import InvalidQueryError, setCompatibility

    pk = Down(name="six").save()
    setCompatibility(6)
    with pytest.warns(DeprecationWarning, match=r"Model Down: a primary key is .*got 'abc'.*6\.x found no object"):
        assert Down.objects.get("abc") is None
    with pytest.warns(DeprecationWarning):
        assert [obj and obj.name for obj in Down.objects.getMultiple([pk, "x"])] == ["six", None]
    with pytest.raises(InvalidQueryError):  # a delete is no get: refused even so
        Down.deleter.deleteByPk("abc")
