"""The standalone drivers (drivers/sync.py, drivers/aio.py) against real servers.

Raw requests (flows/requests.py) are sent with tiny scripts, and the sync driver is
also driven through the public API.  Servers that a test kills or configures are its
own (``EmbeddedRedis`` on a free loopback port); faults between client and server come
from a small TCP proxy that loses replies, so a request really ran on the server when
its connection dies.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.connection
import redis.sentinel
from hypothesis import given, settings
from hypothesis import strategies as st
from monitor import CommandLog
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ConstantBackoff, NoBackoff
from redis.credentials import UsernamePasswordCredentialProvider
from redis.retry import Retry
from server_binaries import redis_server_where

from IndexedRedis import IndexedRedisModel
from IndexedRedis.drivers import aio, sync
from IndexedRedis.embedded import EmbeddedRedis, EmbeddedRedisError, find_redis_server, free_port
from IndexedRedis.flows.requests import Command, Request, ScriptCall, Transaction


class TinyScript:
    """The Script interface the drivers use, for a one-line script."""

    def __init__(self, source: str, readonly: bool) -> None:
        self.name = "tiny"
        self.source = f"-- {uuid.uuid4().hex}\n{source}"  # unknown to every server at first
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self.readonly = readonly

    def evalsha_args(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def eval_args(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVAL", self.source, len(keys), *keys, *args)


# Any: a ScriptCall is typed for IndexedRedis' own Script, which reads its .lua file.
INCR: Any = TinyScript("return redis.call('INCR', KEYS[1])", readonly=False)
GET: Any = TinyScript("return redis.call('GET', KEYS[1])", readonly=True)
SET: Any = TinyScript("return redis.call('SET', KEYS[1], ARGV[1])", readonly=False)
SPIN: Any = TinyScript("local t = redis.call('TIME'); local s = t[1] * 1e6 + t[2]\n"
                  "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - s > 300000\n"
                  "return 'late'", readonly=True)

KEY = b"drv:n"
NO_RETRY = Retry(NoBackoff(), 0)
NO_ASYNC_RETRY = AsyncRetry(NoBackoff(), 0)

#: One request of each kind, and a check of its reply that holds on any server state.
KINDS: dict[str, tuple[Request | list[Request], Callable[[Any], bool]]] = {
    "script": (ScriptCall(INCR, (KEY,), ()), lambda reply: isinstance(reply, int) and reply >= 1),
    "transaction": (Transaction((("GET", KEY), ("EXISTS", KEY))),
                    lambda reply: reply[1] == (reply[0] is not None)),
    "pipeline": ([ScriptCall(INCR, (KEY,), ()), Command(("GET", KEY))],
                 lambda reply: reply[0] >= 1 and int(reply[1]) == reply[0]),
    "command": (Command(("INCR", KEY)), lambda reply: isinstance(reply, int) and reply >= 1),
}


def exercise(execute: Callable[[Any], Any]) -> None:
    """Every kind of request once, its reply checked."""
    for name, (request, ok) in KINDS.items():
        reply = execute(request)
        assert ok(reply), (name, reply)


async def aexercise(execute: Callable[[Any], Awaitable[Any]]) -> None:
    for name, (request, ok) in KINDS.items():
        reply = await execute(request)
        assert ok(reply), (name, reply)


def run_sync(client: Any) -> Callable[[Any], Any]:
    return lambda request: sync.execute(client, request)


def run_async(client: Any) -> Callable[[Any], Awaitable[Any]]:
    return lambda request: aio.execute(client, request)


async def aclose(client: Any) -> None:
    await (client.aclose() if hasattr(client, "aclose") else client.close())


class Song(IndexedRedisModel):
    FIELDS = ["title", "n"]
    INDEXED_FIELDS = ["title"]
    KEY_NAME = "DriverSong"


def on_client(client: Any) -> type[Song]:
    class OnClient(Song):
        KEY_NAME = f"DriverSong:{uuid.uuid4().hex}"
        _connection = client

    return OnClient


def model_roundtrip(client: redis.Redis) -> None:
    """Save, query, get by pk, count and delete through the public API."""
    model = on_client(client)
    first = model(title="a", n="1")
    first.save()
    model(title="b", n="2").save()
    assert [song.n for song in model.objects.filter(title="a").all()] == ["1"]
    fetched = model.objects.get(first._id)
    assert fetched is not None and fetched.title == "a"
    assert model.objects.count() == 2
    first.delete()
    assert [song.title for song in model.objects.all()] == ["b"]


async def amodel_roundtrip(client: redis.asyncio.Redis) -> None:
    model = on_client(client)
    first = model(title="a", n="1")
    await first.asave()
    await model(title="b", n="2").asave()
    assert [song.n for song in await model.objects.filter(title="a").aall()] == ["1"]
    fetched = await model.objects.aget(first._id)
    assert fetched is not None and fetched.title == "a"
    assert await model.objects.acount() == 2
    await first.adelete()
    assert [song.title for song in await model.objects.aall()] == ["b"]


# ---- private servers ------------------------------------------------------------------

Start = Callable[..., EmbeddedRedis]


@pytest.fixture
def servers() -> Iterator[Start]:
    """Starts private servers (``port=`` to reuse one), all stopped at the end."""
    started: list[EmbeddedRedis] = []

    def start(port: int | None = None, **kwargs: Any) -> EmbeddedRedis:
        for attempt in range(3):
            server = EmbeddedRedis(port=port or free_port(), unix_socket=False, **kwargs)
            try:
                server.start()
            except EmbeddedRedisError:
                if port is not None or attempt == 2:
                    raise
                continue
            started.append(server)
            return server
        raise AssertionError("unreachable")

    yield start
    for server in started:
        server.stop()


def kill_and_restart(server: EmbeddedRedis, start: Start) -> EmbeddedRedis:
    """SIGKILL the server (its clients' connections die with it) and start a new, empty
    one on the same port."""
    os.kill(server.pid, signal.SIGKILL)
    port = server.port
    server.stop()
    return start(port=port)


class LossyProxy:
    """A TCP proxy in front of a real server that can lose replies: once armed, it lets
    the next request through (the server runs it) and closes the client's connection
    instead of passing the reply on, as a network failure after the write would."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._to_lose = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_next_reply(self) -> None:
        with self._lock:
            self._to_lose = 1

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                self._drop(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if data and replies:
                with self._lock:
                    lose, self._to_lose = self._to_lose > 0, max(0, self._to_lose - 1)
                if lose:
                    data = b""
            if data:
                try:
                    target.sendall(data)
                    continue
                except OSError:
                    pass
            self._drop(source)
            self._drop(target)
            return

    @staticmethod
    def _drop(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


@pytest.fixture
def lossy(redis_server: EmbeddedRedis) -> Iterator[LossyProxy]:
    proxy = LossyProxy(redis_server.port)  # type: ignore[arg-type]
    yield proxy
    proxy.close()


def evalsha_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


# ---- what each kind of request answers ---------------------------------------------------

_ARGUMENTS = st.one_of(st.binary(max_size=40), st.text(max_size=20), st.integers(), st.floats(),
                       st.binary(max_size=10).map(bytearray), st.binary(max_size=10).map(memoryview))


def _connections() -> list[tuple[str, Any, int]]:
    """A connection of each packing kind, sync and asyncio, and how ``pack`` packs for it."""
    python = redis.connection.PythonRespSerializer
    found = [("sync, Python packer", redis.connection.Connection(command_packer=python(6000, redis.connection.Encoder(
        "utf-8", "strict", False).encode)), sync.BY_ENCODER),
        ("sync, latin-1", redis.connection.Connection(encoding="latin-1"), None),
        ("asyncio", redis.asyncio.connection.Connection(), None),
        ("asyncio, latin-1", redis.asyncio.connection.Connection(encoding="latin-1"), sync.BY_ENCODER)]
    if sync._hiredis_pack is not None:
        found.append(("sync, hiredis packer", redis.connection.Connection(), sync.BY_HIREDIS))
    return found


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["GET", "EVALSHA", "get", "CONFIG GET", "JSON.GET", b"GET", "ÄB"]),
       args=st.lists(_ARGUMENTS, max_size=6))
def test_packing_matches_redis_py(name: Any, args: list[Any]) -> None:
    for label, conn, how in _connections():
        if how is None:  # as each driver chooses
            how = aio.packing(conn) if label.startswith("asyncio") else sync.packing(conn)
        try:
            expected: Any = b"".join(conn.pack_command(name, *args))
        except Exception as exc:  # the same refusal is expected
            expected = type(exc)
        try:
            packed: Any = sync.pack(conn, how, (name, *args))
        except Exception as exc:
            packed = type(exc)
        assert packed == expected, label



def test_replies_match_execute_command(redis_client: redis.Redis) -> None:
    """Scripts unknown to the server are sent whole; plain commands go through the
    client's response callbacks, as execute_command's replies do."""
    redis_client.script_flush()
    redis_client.sadd(b"drv:set", b"a", b"b")
    redis_client.hset(b"drv:hash", mapping={b"f": b"v"})
    execute = run_sync(redis_client)
    assert execute(ScriptCall(INCR, (KEY,), ())) == 1
    assert execute(Command(("SMEMBERS", b"drv:set"))) == redis_client.execute_command("SMEMBERS", b"drv:set")
    assert execute(Command(("HSCAN", b"drv:hash", 0))) == redis_client.execute_command("HSCAN", b"drv:hash", 0)
    assert execute(Command(("PING",))) is True
    assert execute(Transaction((("GET", KEY), ("HMGET", b"drv:hash", b"f", b"g")))) == [b"1", [b"v", None]]
    other: Any = TinyScript("return 7", readonly=True)
    replies = execute([ScriptCall(other, (), ()), Command(("GET", KEY)), ScriptCall(INCR, (KEY,), ())])
    assert replies == [7, b"1", 2]


def test_a_list_keeps_its_order_when_a_script_is_unknown(redis_client: redis.Redis, log: CommandLog) -> None:
    """The reads after an unknown script are sent again after it, so they see what it
    wrote; a write after it cannot be, so there the unknown script runs last."""
    execute = run_sync(redis_client)
    execute(Command(("PING",)))  # connected
    fresh: Any = TinyScript("return redis.call('INCR', KEYS[1])", readonly=False)
    replies: list[Any] = []
    seen = log.commands(lambda: replies.append(execute([ScriptCall(fresh, (KEY,), ()), Command(("GET", KEY))])))
    assert replies == [[1, b"1"]]
    assert seen == ["EVALSHA", "GET", "EVAL", "GET"]
    assert execute([ScriptCall(fresh, (KEY,), ()), Command(("GET", KEY))]) == [2, b"2"]
    later: Any = TinyScript("return redis.call('INCR', KEYS[1])", readonly=False)
    assert execute([ScriptCall(later, (KEY,), ()), Command(("INCR", KEY)), Command(("GET", KEY))]) == [4, 3, b"3"]
    assert redis_client.get(KEY) == b"4"  # the INCR command ran once


def test_error_replies_raise_and_leave_nothing_unread(redis_client: redis.Redis) -> None:
    execute = run_sync(redis_client)
    redis_client.set(b"drv:str", b"x")
    assert execute(ScriptCall(INCR, (KEY,), ())) == 1
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        execute(Transaction((("GET", KEY), ("HMGET", b"drv:str", b"f"))))
    with pytest.raises(redis.ResponseError, match="unknown command"):
        execute(Transaction((("GET", KEY), ("NO-SUCH-COMMAND",))))
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        execute([Command(("HGET", b"drv:str", b"f")), ScriptCall(INCR, (KEY,), ())])
    assert redis_client.get(KEY) == b"2"  # the list's other command ran
    assert execute(Transaction((("ECHO", b"a"), ("ECHO", b"b")))) == [b"a", b"b"]


def test_async_replies_and_errors(redis_url: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        execute = run_async(client)
        await client.script_flush()
        await client.set(b"drv:str", b"x")
        assert await execute(ScriptCall(INCR, (KEY,), ())) == 1
        assert await execute(Command(("PING",))) is True
        assert await execute(Transaction((("GET", KEY), ("GET", b"nope")))) == [b"1", None]
        seven: Any = TinyScript("return 7", True)
        assert await execute([ScriptCall(seven, (), ()), Command(("GET", KEY))]) == [7, b"1"]
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await execute(Transaction((("HMGET", b"drv:str", b"f"),)))
        with pytest.raises(redis.ResponseError, match="unknown command"):
            await execute(Transaction((("NO-SUCH-COMMAND",),)))
        assert await execute(Transaction((("ECHO", b"a"), ("ECHO", b"b")))) == [b"a", b"b"]
        await amodel_roundtrip(client)
        await aclose(client)

    asyncio.run(main())


@pytest.mark.parametrize("single", [True, False], ids=["single-connection", "pooled"])
def test_a_cancelled_async_request_leaves_no_late_reply(redis_url: str, single: bool) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url, single_connection_client=single)
        await aio.execute(client, Command(("PING",)))
        task = asyncio.ensure_future(aio.execute(client, ScriptCall(SPIN, (), ())))
        await asyncio.sleep(0.1)  # written, the server is running it
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await aio.execute(client, Command(("ECHO", b"mine"))) == b"mine"
        if not single:  # the kept connection came back (disconnected, then reconnected)
            kept = aio._kept[client.connection_pool]
            assert len(kept.held) == len(kept.idle) == 1
        await aclose(client)

    asyncio.run(main())


def test_clients_of_other_classes_use_execute_command(redis_url: str) -> None:
    class Instrumented(redis.Redis):
        calls = 0

        def execute_command(self, *args: Any, **options: Any) -> Any:
            type(self).calls += 1
            return super().execute_command(*args, **options)

    client = Instrumented.from_url(redis_url)
    exercise(run_sync(client))
    assert Instrumented.calls >= 2


# ---- restarts and dead connections --------------------------------------------------------


@pytest.mark.parametrize("single", [False, True], ids=["pooled", "single-connection"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_sync_requests_after_a_server_restart(servers: Start, kind: str, single: bool) -> None:
    """No retries allowed: the connection the killed server left behind is replaced
    before anything is written on it, so the first request after the restart works."""
    server = servers()
    client = redis.Redis(**server.connection_params, retry=NO_RETRY, single_connection_client=single)
    exercise(run_sync(client))
    kill_and_restart(server, servers)
    request, ok = KINDS[kind]
    assert ok(sync.execute(client, request))
    exercise(run_sync(client))


@pytest.mark.parametrize("single", [False, True], ids=["pooled", "single-connection"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_async_requests_after_a_server_restart(servers: Start, kind: str, single: bool) -> None:
    server = servers()

    async def main() -> None:
        client = redis.asyncio.Redis(**server.connection_params, retry=NO_ASYNC_RETRY, single_connection_client=single)
        await aexercise(run_async(client))
        kill_and_restart(server, servers)
        request, ok = KINDS[kind]
        assert ok(await aio.execute(client, request))
        await aexercise(run_async(client))
        await aclose(client)

    asyncio.run(main())


def test_the_public_api_after_a_server_restart(servers: Start) -> None:
    server = servers()
    client = redis.Redis(**server.connection_params, retry=NO_RETRY)
    model_roundtrip(client)
    kill_and_restart(server, servers)
    model_roundtrip(client)


def test_a_connection_killed_while_idle_is_replaced(redis_url: str, redis_client: redis.Redis) -> None:
    client = redis.Redis.from_url(redis_url, retry=NO_RETRY)
    exercise(run_sync(client))
    redis_client.client_kill_filter(_type="normal", skipme=True)
    exercise(run_sync(client))


def test_async_connections_killed_while_idle_are_replaced(redis_url: str, redis_client: redis.Redis) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url, retry=NO_ASYNC_RETRY)
        await asyncio.gather(*(aexercise(run_async(client)) for _ in range(8)))
        assert len(aio._kept[client.connection_pool].idle) == 8  # kept between requests
        redis_client.client_kill_filter(_type="normal", skipme=True)
        await asyncio.gather(*(aexercise(run_async(client)) for _ in range(8)))
        await aclose(client)

    asyncio.run(main())


def test_an_async_kept_connection_with_unread_data_is_not_reused_as_is(redis_url: str) -> None:
    """A reply nobody read must not be taken for the next request's (with RESP3 and
    maintenance notifications, redis-py's pools leave pending data for the next read,
    and so does the driver)."""
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url, retry=NO_ASYNC_RETRY, protocol=2)
        await aio.execute(client, Command(("SET", b"drv:k", b"v")))
        conn = aio._kept[client.connection_pool].idle[-1]
        await conn.send_command("PING")  # its reply is left unread
        await asyncio.sleep(0.05)
        assert await aio.execute(client, Command(("GET", b"drv:k"))) == b"v"
        await aclose(client)

    asyncio.run(main())


def test_many_async_tasks_keep_at_most_a_bounded_number_of_connections(redis_url: str,
                                                                      redis_client: redis.Redis) -> None:
    """300 tasks at once on a pool of redis-py 5's default size (2**31): 64 connections
    are kept between requests, the rest go back to the pool."""
    async def main() -> None:
        pool = redis.asyncio.ConnectionPool.from_url(redis_url, max_connections=2**31)
        client = redis.asyncio.Redis(connection_pool=pool)
        for _ in range(2):
            await asyncio.gather(*(aio.execute(client, ScriptCall(INCR, (b"drv:tasks",), ())) for _ in range(300)))
        kept = aio._kept[pool]
        assert len(kept.held) == len(kept.idle) == aio.PIN_LIMIT
        assert set(pool._in_use_connections) == kept.held
        assert redis_client.get(b"drv:tasks") == b"600"
        await pool.disconnect()

    asyncio.run(main())


# ---- never send a write twice; retry reads per the Retry policy --------------------------

WRITES: dict[str, tuple[Request | list[Request], int]] = {
    "script": (ScriptCall(INCR, (KEY,), ()), 1),
    "command": (Command(("INCR", KEY)), 1),
    "pipeline": ([ScriptCall(INCR, (KEY,), ()), ScriptCall(INCR, (KEY,), ())], 2),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_a_write_whose_reply_is_lost_is_not_sent_again(lossy: LossyProxy, redis_client: redis.Redis,
                                                      kind: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=lossy.port, retry=Retry(NoBackoff(), 3))
    sync.execute(client, ScriptCall(INCR, (b"warm",), ()))  # connected, script known
    request, runs = WRITES[kind]
    lossy.lose_next_reply()
    with pytest.raises(redis.ConnectionError, match="may or may not have been applied"):
        sync.execute(client, request)
    assert redis_client.get(KEY) == str(runs).encode()  # ran once, not sent again
    assert sync.execute(client, Command(("INCR", KEY))) == runs + 1  # on a fresh connection


@pytest.mark.parametrize("kind", list(WRITES))
def test_an_async_write_whose_reply_is_lost_is_not_sent_again(lossy: LossyProxy, redis_client: redis.Redis,
                                                             kind: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=lossy.port, retry=AsyncRetry(NoBackoff(), 3))
        await aio.execute(client, ScriptCall(INCR, (b"warm",), ()))
        request, runs = WRITES[kind]
        lossy.lose_next_reply()
        with pytest.raises(redis.ConnectionError, match="may or may not have been applied"):
            await aio.execute(client, request)
        assert redis_client.get(KEY) == str(runs).encode()
        assert await aio.execute(client, Command(("INCR", KEY))) == runs + 1
        await aclose(client)

    asyncio.run(main())


READS: dict[str, Request | list[Request]] = {
    "script": ScriptCall(GET, (KEY,), ()),
    "transaction": Transaction((("GET", KEY),)),
    "pipeline": [ScriptCall(GET, (KEY,), ()), Command(("GET", KEY))],
}


@pytest.mark.parametrize("kind", list(READS))
def test_a_read_whose_reply_is_lost_is_sent_again_per_the_retry_policy(
        lossy: LossyProxy, redis_client: redis.Redis, kind: str) -> None:
    redis_client.set(KEY, b"v")
    request = READS[kind]
    expected = [b"v"] if kind == "transaction" else [b"v", b"v"] if kind == "pipeline" else b"v"
    once = redis.Redis(host="127.0.0.1", port=lossy.port, retry=Retry(ConstantBackoff(0.2), 1))
    sync.execute(once, ScriptCall(GET, (KEY,), ()))
    calls = evalsha_calls(redis_client)
    lossy.lose_next_reply()
    started = time.monotonic()
    assert sync.execute(once, request) == expected
    assert time.monotonic() - started >= 0.2  # the policy's backoff
    if kind != "transaction":
        assert evalsha_calls(redis_client) == calls + 2  # it ran twice
    never = redis.Redis(host="127.0.0.1", port=lossy.port, retry=NO_RETRY)
    sync.execute(never, ScriptCall(GET, (KEY,), ()))
    lossy.lose_next_reply()
    with pytest.raises(redis.ConnectionError) as raised:
        sync.execute(never, request)
    assert "may or may not" not in str(raised.value)


@pytest.mark.parametrize("kind", list(READS))
def test_an_async_read_whose_reply_is_lost_is_sent_again_per_the_retry_policy(
        lossy: LossyProxy, redis_client: redis.Redis, kind: str) -> None:
    redis_client.set(KEY, b"v")
    request = READS[kind]
    expected = [b"v"] if kind == "transaction" else [b"v", b"v"] if kind == "pipeline" else b"v"

    async def main() -> None:
        once = redis.asyncio.Redis(host="127.0.0.1", port=lossy.port, retry=AsyncRetry(NoBackoff(), 1))
        await aio.execute(once, ScriptCall(GET, (KEY,), ()))
        lossy.lose_next_reply()
        assert await aio.execute(once, request) == expected
        never = redis.asyncio.Redis(host="127.0.0.1", port=lossy.port, retry=NO_ASYNC_RETRY)
        await aio.execute(never, ScriptCall(GET, (KEY,), ()))
        lossy.lose_next_reply()
        with pytest.raises(redis.ConnectionError) as raised:
            await aio.execute(never, request)
        assert "may or may not" not in str(raised.value)
        await aclose(once)
        await aclose(never)

    asyncio.run(main())


def _fail_writes(real: Callable[[Any], Any], fail: list[int], partial: bool,
                 error: Callable[[], BaseException]) -> Callable[[Any], Any]:
    """A write function that fails (``fail`` counts down) with ``error()``, before
    writing anything or, with ``partial``, after writing the first command only."""

    def write(data: Any) -> Any:
        if not fail[0]:
            return real(data)
        fail[0] -= 1
        if partial:
            packed = b"".join(data)
            real((packed[:packed.index(b"*", 1)],))  # up to where the second command starts
        raise error()

    return write


def _broken_pipe() -> BaseException:
    """What a connection's send_packed_command raises for EPIPE."""
    return redis.ConnectionError("Error 32 while writing to socket. Broken pipe.")


def test_a_write_that_failed_while_being_sent_is_sent_again(redis_url: str, redis_client: redis.Redis,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 1))
    sync.execute(client, ScriptCall(INCR, (b"warm",), ()))
    conn = sync._pinned(client.connection_pool)
    fail = [1]
    real = redis.connection.AbstractConnection.send_packed_command
    write = _fail_writes(lambda data: real(conn, data, False), fail, False, _broken_pipe)
    monkeypatch.setattr(conn, "send_packed_command", lambda command, check_health=True: write(command))
    assert sync.execute(client, ScriptCall(INCR, (KEY,), ())) == 1  # written once, on the new connection
    fail[0] = 1
    monkeypatch.setattr(conn.retry, "_retries", 0)
    with pytest.raises(redis.ConnectionError, match="Broken pipe") as raised:  # no retries: the send error
        sync.execute(client, ScriptCall(INCR, (KEY,), ()))
    assert "may or may not" not in str(raised.value)
    assert redis_client.get(KEY) == b"1"


def test_a_pipelined_list_that_failed_half_sent_is_not_sent_again(redis_url: str, redis_client: redis.Redis,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 3))
    sync.execute(client, ScriptCall(INCR, (b"warm",), ()))
    conn = sync._pinned(client.connection_pool)
    fail = [1]
    real = redis.connection.AbstractConnection.send_packed_command
    write = _fail_writes(lambda data: real(conn, data, False), fail, True, _broken_pipe)
    monkeypatch.setattr(conn, "send_packed_command", lambda command, check_health=True: write(command))
    with pytest.raises(redis.ConnectionError, match="may or may not have been applied"):
        sync.execute(client, [ScriptCall(INCR, (KEY,), ()), ScriptCall(INCR, (KEY,), ())])
    time.sleep(0.1)
    assert redis_client.get(KEY) == b"1"  # the first command arrived whole and ran; nothing was resent


def test_async_writes_that_failed_while_being_sent(redis_url: str, redis_client: redis.Redis) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url, retry=AsyncRetry(NoBackoff(), 1))
        await aio.execute(client, ScriptCall(INCR, (b"warm",), ()))
        writer: Any = aio._kept[client.connection_pool].idle[-1]._writer  # of the next one handed out
        fail = [1]
        writer.writelines = _fail_writes(writer.writelines, fail, False, BrokenPipeError)
        assert await aio.execute(client, ScriptCall(INCR, (KEY,), ())) == 1  # sent again, ran once
        writer = aio._kept[client.connection_pool].idle[-1]._writer  # reconnected: a new one
        fail[0] = 1
        writer.writelines = _fail_writes(writer.writelines, fail, True, BrokenPipeError)
        with pytest.raises(redis.ConnectionError, match="may or may not have been applied"):
            await aio.execute(client, [ScriptCall(INCR, (KEY,), ()), ScriptCall(INCR, (KEY,), ())])
        await asyncio.sleep(0.1)
        assert redis_client.get(KEY) == b"2"
        await aclose(client)

    asyncio.run(main())


# ---- one write per request ----------------------------------------------------------------

EXPECTED_COMMANDS = {
    "script": ["EVALSHA"],
    "transaction": ["MULTI", "GET", "EXISTS", "EXEC"],
    "pipeline": ["EVALSHA", "GET"],
    "command": ["INCR"],
}


def test_each_request_is_one_write(redis_url: str, log: CommandLog, monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis.from_url(redis_url)
    exercise(run_sync(client))
    conn = sync._pinned(client.connection_pool)
    writes: list[int] = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        if self is conn:
            writes.append(len(command))  # buffers, each one sendall
        real(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    for kind, (request, ok) in KINDS.items():
        writes.clear()
        replies: list[Any] = []
        seen = log.commands(lambda request=request, replies=replies: replies.append(  # type: ignore[misc]
            sync.execute(client, request)))
        assert ok(replies[0]), kind
        assert seen == EXPECTED_COMMANDS[kind], kind
        assert writes == [1], kind


def test_each_async_request_is_one_write(redis_url: str, log: CommandLog, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.new_event_loop()
    client = redis.asyncio.Redis.from_url(redis_url)
    writes: list[int] = []
    real_writelines, real_write = asyncio.StreamWriter.writelines, asyncio.StreamWriter.write

    def writelines(self: asyncio.StreamWriter, data: Any) -> None:
        writes.append(len(data))
        real_writelines(self, data)

    def write(self: asyncio.StreamWriter, data: Any) -> None:
        writes.append(1)
        real_write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "writelines", writelines)
    monkeypatch.setattr(asyncio.StreamWriter, "write", write)
    try:
        loop.run_until_complete(aexercise(run_async(client)))
        for kind, (request, ok) in KINDS.items():
            writes.clear()
            replies: list[Any] = []
            seen = log.commands(lambda request=request, replies=replies: replies.append(  # type: ignore[misc]
                loop.run_until_complete(aio.execute(client, request))))
            assert ok(replies[0]), kind
            assert seen == EXPECTED_COMMANDS[kind], kind
            assert writes == [1], kind
        loop.run_until_complete(aclose(client))
    finally:
        loop.close()


# ---- client set-ups -----------------------------------------------------------------------


def test_a_single_connection_client_uses_its_connection(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, single_connection_client=True)
    pool = client.connection_pool
    exercise(run_sync(client))
    model_roundtrip(client)
    if hasattr(client, "single_connection_lock"):  # redis-py 5.0's is not thread-safe
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    exercise(run_sync(client))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors[0]
    assert pool._created_connections == 1  # only the client's own
    assert sync._budget.get(pool, 0) == 0


def test_an_async_single_connection_client(redis_url: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url, single_connection_client=True)
        await asyncio.gather(*(aexercise(run_async(client)) for _ in range(16)))
        await amodel_roundtrip(client)
        pool = client.connection_pool
        assert len(pool._in_use_connections) == 1 and not pool._available_connections
        await aclose(client)

    asyncio.run(main())


def test_a_blocking_pool(redis_url: str, redis_client: redis.Redis) -> None:
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=8, timeout=30)
    client = redis.Redis(connection_pool=pool)
    exercise(run_sync(client))
    model_roundtrip(client)
    errors = many_threads(200, lambda: sync.execute(client, ScriptCall(INCR, (b"drv:threads",), ())))
    assert not errors, errors[0]
    assert redis_client.get(b"drv:threads") == b"1000"
    assert pool.pool.qsize() == 8  # every slot free again
    pool.disconnect()


def test_an_async_blocking_pool(redis_url: str, redis_client: redis.Redis) -> None:
    async def main() -> None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=4, timeout=30)
        client = redis.asyncio.Redis(connection_pool=pool)
        await asyncio.gather(*(aexercise(run_async(client)) for _ in range(64)))
        await amodel_roundtrip(client)
        kept = aio._kept[pool]
        assert len(kept.held) == 2 and len(kept.idle) == 2  # max_connections // 2 kept, and idle now
        assert set(pool._in_use_connections) == kept.held  # the others went back
        await pool.disconnect()

    asyncio.run(main())


def many_threads(count: int, action: Callable[[], Any], per_thread: int = 5,
                 at_once: int | None = None) -> list[BaseException]:
    """``count`` threads doing ``action`` ``per_thread`` times, all started together (or
    ``at_once`` at a time), each staying alive, idle, until all are done; the errors
    they met."""
    errors: list[BaseException] = []
    gate = threading.Semaphore(at_once or count)
    start, finish = threading.Barrier(count), threading.Barrier(count)

    def work() -> None:
        try:
            start.wait(60)
            with gate:
                for _ in range(per_thread):
                    action()
        except BaseException as exc:
            errors.append(exc)
        finish.wait(60)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def test_many_threads_pin_at_most_a_bounded_number_of_connections(redis_url: str,
                                                                 redis_client: redis.Redis) -> None:
    """200 threads at once on a pool of redis-py 5's default size (2**31): 64 keep a
    connection, the rest check one out per request."""
    pool = redis.ConnectionPool.from_url(redis_url, max_connections=2**31)
    client = redis.Redis(connection_pool=pool)
    peak = [0]

    def action() -> None:
        sync.execute(client, ScriptCall(INCR, (b"drv:threads",), ()))
        peak[0] = max(peak[0], sync._budget.get(pool, 0))

    assert not many_threads(200, action)
    assert peak[0] == sync.PIN_LIMIT
    assert redis_client.get(b"drv:threads") == b"1000"
    gc.collect()
    assert sync._budget.get(pool, 0) == 0
    assert not pool._in_use_connections
    pool.disconnect()


def test_many_threads_on_the_default_pool(redis_url: str, redis_client: redis.Redis) -> None:
    """200 threads, 32 busy at a time, that stay alive once done: the idle ones hold at
    most min(max_connections // 2, PIN_LIMIT) connections (redis-py 6+ bounds the
    default pool to 100), so the busy ones never run out."""
    client = redis.Redis.from_url(redis_url)
    pool = client.connection_pool
    bound = min(pool.max_connections // 2, sync.PIN_LIMIT)
    peak = [0]

    def action() -> None:
        sync.execute(client, ScriptCall(INCR, (b"drv:threads",), ()))
        peak[0] = max(peak[0], sync._budget.get(pool, 0))

    assert not many_threads(200, action, at_once=32)
    assert peak[0] == bound
    assert redis_client.get(b"drv:threads") == b"1000"
    gc.collect()
    assert sync._budget.get(pool, 0) == 0


def test_a_credential_provider(servers: Start) -> None:
    server = servers()
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "app", "on", ">app-secret", "~*", "&*", "+@all")
    admin.execute_command("ACL", "SETUSER", "default", "off")  # nothing works unauthenticated
    admin.close()
    port = server.port
    assert port is not None
    provider = UsernamePasswordCredentialProvider("app", "app-secret")
    client = redis.Redis(host="127.0.0.1", port=port, credential_provider=provider)
    exercise(run_sync(client))
    assert sync.execute(client, Command(("ACL", "WHOAMI"))) == b"app"
    model_roundtrip(client)
    assert sync._pinned(client.connection_pool) is None  # per request: re-authentication sees each release
    with pytest.raises(redis.RedisError, match="(?i)auth"):
        sync.execute(redis.Redis(host="127.0.0.1", port=port, retry=NO_RETRY), Command(("PING",)))

    async def main() -> None:
        aclient = redis.asyncio.Redis(host="127.0.0.1", port=port, credential_provider=provider)
        await aexercise(run_async(aclient))
        assert await aio.execute(aclient, Command(("ACL", "WHOAMI"))) == b"app"
        await aclose(aclient)

    asyncio.run(main())


@pytest.fixture
def sentinel(servers: Start) -> Iterator[tuple[int, EmbeddedRedis, Start]]:
    """A real Sentinel process monitoring a private master named ``irmaster``."""
    binary = shutil.which("redis-sentinel")
    command = [binary] if binary else [find_redis_server()]  # redis-server --sentinel
    master = servers()
    tmpdir = tempfile.mkdtemp(prefix="ir-sentinel-")
    port = free_port()
    config = os.path.join(tmpdir, "sentinel.conf")
    with open(config, "w") as out:
        out.write(f"port {port}\nbind 127.0.0.1\ndir {tmpdir}\n"
                  f"sentinel monitor irmaster 127.0.0.1 {master.port} 1\n")
    log = open(os.path.join(tmpdir, "sentinel.log"), "wb")
    process = subprocess.Popen([*command, config, *([] if binary else ["--sentinel"])],
                               stdout=log, stderr=subprocess.STDOUT, cwd=tmpdir)
    try:
        probe = redis.Redis(host="127.0.0.1", port=port, retry=NO_RETRY, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                with open(os.path.join(tmpdir, "sentinel.log")) as text:
                    pytest.skip(f"{command[0]} cannot run as a Sentinel: {text.read()[-500:]}")
            try:
                address: Any = probe.sentinel_get_master_addr_by_name("irmaster")
                if address and int(address[1]) == master.port:
                    break
            except (redis.ConnectionError, redis.ResponseError):
                pass
            assert time.monotonic() < deadline, "the Sentinel never reported its master"
            time.sleep(0.05)
        probe.close()
        yield port, master, servers
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_a_sentinel_managed_pool(sentinel: tuple[int, EmbeddedRedis, Start]) -> None:
    port, master, start = sentinel
    client = redis.sentinel.Sentinel([("127.0.0.1", port)], socket_timeout=5).master_for(
        "irmaster", retry=NO_RETRY)
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    exercise(run_sync(client))
    model_roundtrip(client)
    assert sync._pinned(pool) is None and not pool._in_use_connections  # per request
    kill_and_restart(master, start)  # same address: the pool reconnects to it
    exercise(run_sync(client))

    async def main() -> None:
        aclient = redis.asyncio.sentinel.Sentinel([("127.0.0.1", port)], socket_timeout=5).master_for(
            "irmaster", retry=NO_ASYNC_RETRY)
        await aexercise(run_async(aclient))
        await amodel_roundtrip(aclient)
        await aclose(aclient)

    asyncio.run(main())


def test_client_side_caching(servers: Start) -> None:
    cache = pytest.importorskip("redis.cache", reason="client-side caching needs redis-py 5.1 or later")
    executable = redis_server_where(lambda version: version >= (7, 4))
    if executable is None:
        pytest.skip("client-side caching needs Redis 7.4 or later: point INDEXEDREDIS_TEST_REDIS_SERVER at one")
    server = servers(executable=executable)
    client = redis.Redis(**server.connection_params, protocol=3, cache_config=cache.CacheConfig())
    exercise(run_sync(client))
    model_roundtrip(client)
    client.set(b"drv:cached", b"old")
    assert client.get(b"drv:cached") == b"old"
    assert client.get(b"drv:cached") == b"old"  # from the cache now
    sync.execute(client, ScriptCall(SET, (b"drv:cached",), (b"new",)))  # a write the cache must see
    assert client.get(b"drv:cached") == b"new"


def test_maintenance_notifications(redis_url: str) -> None:
    maint = pytest.importorskip("redis.maint_notifications",
                                reason="maintenance notifications need redis-py 6.3 or later")
    client = redis.Redis.from_url(redis_url, protocol=3,
                                  maint_notifications_config=maint.MaintNotificationsConfig(enabled="auto"))
    exercise(run_sync(client))
    model_roundtrip(client)
    conn = sync._pinned(client.connection_pool)
    assert conn is not None
    conn.mark_for_reconnect()  # as a MOVING notification does
    assert sync.execute(client, Command(("PING",))) is True
    assert not conn.is_connected  # reconnects after the request, as execute_command does
    exercise(run_sync(client))

    async def main() -> None:
        aclient = redis.asyncio.Redis.from_url(
            redis_url, protocol=3, maint_notifications_config=maint.MaintNotificationsConfig(enabled="auto"))
        await aexercise(run_async(aclient))
        await aclose(aclient)

    asyncio.run(main())
