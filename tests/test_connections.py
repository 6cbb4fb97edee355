"""The sync driver's connection handling (drivers/sync.py), against the real test server.

Each thread keeps one connection of a pool checked out (see ``sync._new_slot``);
these tests check that this never leaks connections, never exceeds half a bounded
pool (nor ``sync.PIN_LIMIT``), survives fork and dropped connections, and never leaves
unread replies behind.  tests/test_drivers.py has the restarts, retries and set-ups.
"""

from __future__ import annotations

import gc
import multiprocessing
import threading
from typing import Any

import pytest
import redis

from IndexedRedis import IndexedRedisModel
from IndexedRedis.drivers import sync as executor
from IndexedRedis.flows.requests import Transaction


class Pinned(IndexedRedisModel):
    FIELDS = ["name", "group"]
    INDEXED_FIELDS = ["group"]
    KEY_NAME = "ConnPinned"


def _in_use(pool: redis.ConnectionPool) -> int:
    return len(pool._in_use_connections)


def _bound_client(redis_url: str, **pool_kwargs: Any) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(redis_url, **pool_kwargs)
    return redis.Redis(connection_pool=pool)


def _in_thread(fn: Any) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def test_a_thread_keeps_one_connection_and_gives_it_back_when_it_ends(redis_url: str) -> None:
    client = _bound_client(redis_url)
    pool = client.connection_pool
    class OnClient(Pinned):
        KEY_NAME = "ConnPinnedOnClient"
        REDIS_CONNECTION_PARAMS = {"connection_pool": pool}

    seen: list[int] = []

    def work() -> None:
        for n in range(20):
            OnClient(name=f"n{n}", group=str(n % 3)).save()
            assert f"n{n}" in {o.name for o in OnClient.objects.filter(group=str(n % 3)).all()}
            seen.append(_in_use(pool))

    _in_thread(work)
    # One connection stayed checked out for the whole thread (not one per operation)...
    assert set(seen) == {1}
    gc.collect()
    # ...and went back to the pool when the thread ended.
    assert _in_use(pool) == 0
    assert len(pool._available_connections) == 1
    assert OnClient.objects.count() == 20
    client.close()


def test_idle_threads_never_exhaust_a_bounded_pool(redis_url: str) -> None:
    """Threads that worked and now sit idle hold at most half the pool: a pool of 4 and
    six idle threads still serves new work (pinning every thread would fail there)."""
    pool = redis.ConnectionPool.from_url(redis_url, max_connections=4)

    class Bounded(IndexedRedisModel):
        FIELDS = ["name", "group"]
        INDEXED_FIELDS = ["group"]
        KEY_NAME = "ConnBounded"
        REDIS_CONNECTION_PARAMS = {"connection_pool": pool}

    release = threading.Event()
    errors: list[BaseException] = []

    def work(n: int, finished: threading.Event) -> None:
        try:
            for i in range(5):
                Bounded(name=f"{n}-{i}", group=str(n)).save()
            assert len(Bounded.objects.filter(group=str(n)).all()) == 5
        except BaseException as exc:
            errors.append(exc)
        finished.set()
        release.wait(30)  # stay alive, idle, holding whatever it holds

    threads = []
    for n in range(6):  # one after another: never more than one busy at a time
        finished = threading.Event()
        thread = threading.Thread(target=work, args=(n, finished))
        thread.start()
        assert finished.wait(30)
        threads.append(thread)
    try:
        assert not errors, errors[0]
        assert executor._budget.get(pool, 0) == 2  # half of max_connections
        Bounded(name="main", group="m").save()
        assert Bounded.objects.count() == 31
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    gc.collect()
    assert executor._budget.get(pool, 0) == 0
    assert _in_use(pool) == 0
    pool.disconnect()


def test_pools_with_a_fixed_size_class_are_used_per_command(redis_url: str) -> None:
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=2)

    class Blocking(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "ConnBlocking"
        REDIS_CONNECTION_PARAMS = {"connection_pool": pool}

    Blocking(name="a").save()
    assert [o.name for o in Blocking.objects.filter(name="a").all()] == ["a"]
    assert pool.pool.qsize() == 2  # both slots free again: given back after every command
    pool.disconnect()


def _child_saves(url: str, queue: Any) -> None:
    try:
        Pinned(name="from child", group="c").save()
        queue.put(sorted(o.name for o in Pinned.objects.filter(group="c").all()))
    except BaseException as exc:  # reported to the parent
        queue.put(repr(exc))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_uses_its_own_connection(redis_url: str) -> None:
    Pinned(name="from parent", group="p").save()  # the parent thread now holds a connection
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_saves, args=(redis_url, queue))
    child.start()
    result = queue.get(timeout=30)
    child.join(30)
    assert result == ["from child"]
    # The parent's own connection was not disturbed by the child.
    Pinned(name="parent again", group="p").save()
    assert sorted(o.name for o in Pinned.objects.filter(group="p").all()) == ["from parent", "parent again"]


def test_a_killed_connection_is_replaced(redis_url: str, redis_client: redis.Redis) -> None:
    Pinned(name="before", group="g").save()
    redis_client.client_kill_filter(_type="normal", skipme=True)
    # The idle connection the server closed is replaced before the next write goes out.
    Pinned(name="after", group="g").save()
    assert sorted(o.name for o in Pinned.objects.filter(group="g").all()) == ["after", "before"]


def test_error_replies_leave_no_unread_reply_behind() -> None:
    client = Pinned._get_client()
    with pytest.raises(redis.ResponseError):
        executor.execute(client, Transaction((("SET", b"conn:x", b"1"), ("NO-SUCH-COMMAND", b"y"))))
    # This thread's connection answers the next requests with their own replies.
    assert executor.execute(client, Transaction((("ECHO", b"a"), ("ECHO", b"b")))) == [b"a", b"b"]
    Pinned(name="n", group="g").save()
    assert [o.name for o in Pinned.objects.filter(group="g").all()] == ["n"]
    assert client.get(b"conn:x") is None  # the aborted transaction wrote nothing


# ---- connection params are checked when they are given -----------------------------------


def test_unknown_params_are_refused_when_set_naming_the_key_and_a_fix() -> None:
    from IndexedRedis import getDefaultRedisConnectionParams, setDefaultRedisConnectionParams

    before = getDefaultRedisConnectionParams()
    with pytest.raises(TypeError, match=r"unknown connection param 'hots'\. Did you mean 'host'\?"):
        setDefaultRedisConnectionParams({"hots": "127.0.0.1"})
    with pytest.raises(ValueError, match=r"bad Redis URL 'http://x'"):
        setDefaultRedisConnectionParams({"url": "http://x"})
    with pytest.raises(TypeError, match="expects a dict"):
        setDefaultRedisConnectionParams("redis://127.0.0.1")  # type: ignore[arg-type]
    assert getDefaultRedisConnectionParams() == before  # a refused call changes nothing


def test_a_url_param_is_spelled_out_and_other_keys_override_it(redis_url: str) -> None:
    from IndexedRedis import getDefaultRedisConnectionParams, setDefaultRedisConnectionParams

    setDefaultRedisConnectionParams({"url": redis_url.rsplit("/", 1)[0] + "/5", "db": 3, "socket_timeout": 2})
    params = getDefaultRedisConnectionParams()
    assert params["db"] == 3 and params["socket_timeout"] == 2 and "url" not in params

    class UrlParams(IndexedRedisModel):
        FIELDS = ["name"]
        INDEXED_FIELDS = ["name"]
        KEY_NAME = "UrlParams"

    other = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    other.flushdb()  # the fixture's own server
    try:
        UrlParams(name="x").save()
        assert other.hlen(UrlParams._meta.keys.generation(0).objs) == 1  # in db 3, not 5
    finally:
        other.flushdb()
        other.close()


def test_a_model_with_unknown_connection_params_is_refused_at_definition() -> None:
    from IndexedRedis import InvalidModelException

    with pytest.raises(InvalidModelException, match=r"BadParams: REDIS_CONNECTION_PARAMS: unknown connection param "
                                                    r"'prot'\. Did you mean 'port'\?"):
        class BadParams(IndexedRedisModel):
            FIELDS = ["name"]
            KEY_NAME = "BadParams"
            REDIS_CONNECTION_PARAMS = {"prot": 6379}


def test_redis_url_in_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from IndexedRedis import connection, getDefaultRedisConnectionParams

    monkeypatch.setattr(connection, "_explicit_default", None)
    monkeypatch.setenv("REDIS_URL", "redis://10.1.2.3:6400/2?socket_timeout=1.5")
    assert getDefaultRedisConnectionParams() == {"host": "10.1.2.3", "port": 6400, "db": 2, "socket_timeout": 1.5}
    monkeypatch.setenv("REDIS_URL", "localhost:6379")
    with pytest.raises(ValueError, match="the REDIS_URL environment variable: bad Redis URL 'localhost:6379'"):
        getDefaultRedisConnectionParams()
