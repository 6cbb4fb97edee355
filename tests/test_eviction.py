"""Eviction safety: a server whose maxmemory-policy may evict our keys is warned about
(once) or refused on first use; under noeviction a write that does not fit raises
OutOfMemoryError and writes nothing.  Private servers with the policies under test."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from IndexedRedis import (
    EvictionPolicyError,
    EvictionWarning,
    IndexedRedisModel,
    OutOfMemoryError,
    eviction,
    setDefaultRedisConnectionParams,
    setEvictionPolicyCheck,
)
from IndexedRedis.embedded import EmbeddedRedis

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server() -> Iterator[Callable[..., EmbeddedRedis]]:
    started: list[EmbeddedRedis] = []

    def start(*args: str) -> EmbeddedRedis:
        one = EmbeddedRedis(extra_args=list(args)).start()
        started.append(one)
        setDefaultRedisConnectionParams(one.connection_params)
        return one

    yield start
    for one in started:
        one.stop()


@pytest.fixture(autouse=True)
def default_check() -> Iterator[None]:
    setEvictionPolicyCheck("warn")
    eviction._warned.clear()
    yield
    eviction._chosen = None
    eviction._epoch += 1


class Item(IndexedRedisModel):
    FIELDS = ["name", "payload"]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "EvictionItems"


def test_an_allkeys_policy_is_warned_about_once_naming_it_and_the_fix(server: Any) -> None:
    one = server("--maxmemory-policy", "allkeys-lru")
    with pytest.warns(EvictionWarning, match=r"maxmemory-policy allkeys-lru.*noeviction.*volatile-\*") as caught:
        Item(name="a").save()
    ours = [w for w in caught if issubclass(w.category, EvictionWarning)]
    assert len(ours) == 1 and one.connection_params["unix_socket_path"] in str(ours[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvictionWarning)  # a second warning would raise
        Item(name="b").save()
        assert Item.objects.filter(name="b").count() == 1

    async def main() -> int:  # the asyncio client of the same server: already warned about
        return await Item.objects.acount()

    with warnings.catch_warnings():
        warnings.simplefilter("error", EvictionWarning)
        assert asyncio.run(main()) == 2


def test_refuse_mode_refuses_before_anything_is_written(server: Any) -> None:
    one = server("--maxmemory-policy", "allkeys-random")
    setEvictionPolicyCheck("refuse")
    with pytest.raises(EvictionPolicyError, match="allkeys-random"):
        Item(name="a").save()
    assert one.client().dbsize() == 0

    async def main() -> None:
        await Item(name="b").asave()

    with pytest.raises(EvictionPolicyError):
        asyncio.run(main())
    assert one.client().dbsize() == 0


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru"])
def test_safe_policies_pass_quietly(server: Any, policy: str) -> None:
    server("--maxmemory-policy", policy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvictionWarning)
        Item(name="a").save()
    assert Item.objects.count() == 1


def test_a_user_that_may_not_run_INFO_skips_the_check(server: Any) -> None:
    one = server("--maxmemory-policy", "allkeys-lru")
    one.client().execute_command("ACL", "SETUSER", "app", "on", ">secret", "~*", "+@all", "-info")
    setDefaultRedisConnectionParams({**one.connection_params, "username": "app", "password": "secret"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvictionWarning)
        Item(name="a").save()  # the policy could not be read: no warning, no failure
    assert Item.objects.count() == 1


def test_a_write_that_does_not_fit_raises_and_writes_nothing(server: Any) -> None:
    one = server("--maxmemory-policy", "noeviction", "--maxmemory", "4mb")
    admin = one.client()
    Item.reset([Item(name=f"n{i % 5}", payload="p" * 100) for i in range(200)])
    before = sorted((o._id, o.name) for o in Item.objects.all())
    filler = 0
    # Fill the server to its limit from outside, in ever smaller pieces: a refused
    # 100 kB SET leaves up to 100 kB free once its query buffer is gone, room enough
    # for a small save.
    for size in (100_000, 10_000, 1_000):
        while True:
            try:
                admin.set(f"filler:{filler}", b"x" * size)
            except redis.exceptions.OutOfMemoryError:
                break
            except redis.ResponseError as exc:  # redis-py 5.0 names it so
                assert str(exc).startswith("OOM"), exc
                break
            filler += 1
    keys = admin.dbsize()
    with pytest.raises(OutOfMemoryError, match=r"Model Item: Redis refused the write, its memory is full.*"
                                               r"nothing of it was written"):
        Item(name="new", payload="q" * 200_000).save()
    with pytest.raises(OutOfMemoryError):
        Item.reset([Item(name=f"m{i}", payload="r" * 1000) for i in range(500)])
    assert admin.dbsize() == keys  # nothing added, not even a staging generation left
    assert sorted((o._id, o.name) for o in Item.objects.all()) == before
    for i in range(filler):
        admin.delete(f"filler:{i}")
    Item(name="fits now").save()
    assert Item.objects.filter(name="fits now").count() == 1
