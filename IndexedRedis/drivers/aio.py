"""The asyncio driver: sends a flow's requests to a ``redis.asyncio`` client, one round trip each.

As the sync driver does, a request to a plain ``redis.asyncio.Redis`` is packed here and
written at once (a MULTI/EXEC or a pipelined list too), and its replies are read back
without ``execute_command``'s per-command machinery, under the same rules: the
client's ``Retry`` policy where sending again cannot run anything twice, NOSCRIPT
answered by sending the script whole, response callbacks for plain commands.  One
event loop runs many tasks at once, so each request checks a connection out of the
pool and gives it back; a single-connection client's connection is used under the
client's lock.  Either is replaced before the write if the server closed it.  Other
clients go through ``execute_command``.
"""

from __future__ import annotations

import asyncio
import select
import weakref
from dataclasses import replace
from typing import Any

import redis.asyncio
from redis.asyncio.connection import AbstractConnection, async_timeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..flows.requests import Command, Request, ScriptCall, Transaction
from .scriptforms import attempts, mark_plain, read_only_form, refused_read_only
from .sync import (
    _EXEC,
    _MULTI,
    BY_ENCODER,
    BY_HIREDIS,
    PIN_LIMIT,
    _hiredis_pack,
    _maint_notifications,
    pack,
    parsed,
    pipelined_result,
    resend_args,
    resend_plan,
    retry_pause,
    transaction_result,
    utf8_strict,
    wants_command_name,
    wire_args,
)

__all__ = ["execute"]


async def execute(client: Any, request: Request | list[Request]) -> Any:
    """Send one request, or a list of them in one pipelined round trip."""
    if type(request) is ScriptCall and request.wait is not None:  # WAIT goes right after it
        return await execute(client, [replace(request, wait=None), Command(("WAIT", *request.wait))])
    if type(client) is not redis.asyncio.Redis:
        return await _execute_generic(client, request)
    if client.single_connection_client:
        return await _on_single_connection(client, request)
    pool = client.connection_pool
    kept = _kept.get(pool)
    if kept is None:
        kept = _keeping(pool)
    if kept.idle:
        conn = kept.idle.pop()
    elif wants_command_name(type(pool)):
        conn = await pool.get_connection("EVALSHA")
    else:
        conn = await pool.get_connection()
    try:  # from here on the connection goes back, whatever happens (a cancellation too)
        if _stale(conn, kept.pushes) if conn in kept.held else _hung_up(conn):
            await conn.disconnect()  # reconnected before the write
        return await _send(client, conn, request)
    finally:
        if conn in kept.held or kept.keep(conn):
            try:
                if kept.pushes and conn.should_reconnect():  # a maintenance notification moved the endpoint
                    await conn.disconnect()
            finally:
                kept.idle.append(conn)
        else:
            await pool.release(conn)


class _Kept:
    """The connections of one pool that this driver keeps checked out between requests.

    Taking a connection from a redis.asyncio pool and giving it back costs more than
    the rest of a get by pk (a Condition, a timeout and observability hooks per
    checkout in redis-py 8), so, as the sync driver keeps one per thread, the asyncio
    driver keeps the connections its tasks used in a stack of idle ones, up to
    min(max_connections // 2, PIN_LIMIT) per pool: the rest stay for the client's own
    commands and pipelines.  Tasks beyond that take one from the pool per request.
    Only plain and blocking pools without credential providers take part (those
    re-authenticate on checkout); Sentinel's pools (a master that moves) do not.  A
    kept connection is checked before reuse as the pools check theirs: closed by the
    server or holding unread data, it is dropped and reconnects on the write.  After
    ``aclose()`` (which disconnects in-use connections too) the kept ones reconnect on
    their next use.
    """

    __slots__ = ("idle", "held", "limit", "pushes", "__weakref__")

    def __init__(self, limit: int, pushes: bool) -> None:
        self.idle: list[Any] = []
        self.held: set[Any] = set()
        self.limit = limit
        self.pushes = pushes

    def keep(self, conn: Any) -> bool:
        if len(self.held) >= self.limit or not conn.is_connected:
            return False
        self.held.add(conn)
        return True


_kept: weakref.WeakKeyDictionary[Any, _Kept] = weakref.WeakKeyDictionary()


def _keeping(pool: Any) -> _Kept:
    eligible = type(pool) in (redis.asyncio.ConnectionPool, redis.asyncio.BlockingConnectionPool) \
        and pool.connection_kwargs.get("credential_provider") is None
    limit = min(pool.max_connections // 2, PIN_LIMIT) if eligible else 0
    kept = _kept[pool] = _Kept(limit, _maint_notifications(pool))
    return kept


async def _on_single_connection(client: Any, request: Request | list[Request]) -> Any:
    """The request on the client's own connection, under the client's lock; checked
    first as the pool checks the connections it hands out."""
    if client.connection is None:
        await client.initialize()
    async with client._single_conn_lock:
        conn = client.connection
        if conn.is_connected:
            await _drop_if_stale(conn, _maint_notifications(client.connection_pool))
        try:
            return await _send(client, conn, request)
        finally:
            moved = getattr(conn, "should_reconnect", None)  # redis-py 6+: a maintenance notification
            if moved is not None and moved():
                await conn.disconnect()


async def _drop_if_stale(conn: Any, pushes_expected: bool) -> None:
    """Disconnect ``conn`` if the server closed it or it holds unread data, as the
    pools' ``ensure_connection`` does (``can_read`` in redis-py 8, formerly
    ``can_read_destructive``); the next write reconnects."""
    can_read = getattr(conn, "can_read", None) or conn.can_read_destructive
    try:
        if _hung_up(conn) or (await can_read() and not pushes_expected):
            await conn.disconnect()
    except (RedisConnectionError, RedisTimeoutError, OSError):
        await conn.disconnect()


_HANG_UP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0) if hasattr(select, "poll") else 0
_READABLE = select.POLLIN if hasattr(select, "poll") else 1


def _socket_events(conn: Any) -> int:
    """What a zero-timeout poll of ``conn``'s socket reports (``_HANG_UP`` and
    ``_READABLE`` bits); 0 when it is not connected."""
    sock = None if conn._writer is None else conn._writer.get_extra_info("socket")
    if sock is None:
        return 0
    if sock.fileno() < 0:  # closed under us (the transport let go of it): as a hang-up
        return _HANG_UP or _READABLE
    if not _HANG_UP:  # no poll(2) here: select tells readable, not hung up
        return _READABLE if select.select((sock,), (), (), 0)[0] else 0
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | _HANG_UP)
    found = 0
    for _, events in poller.poll(0):
        found |= events
    return found


def _hung_up(conn: Any) -> bool:
    """Whether the server closed ``conn``, though its event loop may not have seen it yet.

    The pools' own check (``can_read``) sees only what the loop already read: a
    connection the server closed a moment ago (a restart) passes it, and in redis-py
    6+ with RESP3 an EOF passes anyway.  A zero-timeout poll of the socket tells, about
    a microsecond: Linux reports the server's FIN as POLLRDHUP; elsewhere only a reset
    connection (POLLHUP, POLLERR) is caught here.
    """
    return bool(_socket_events(conn) & _HANG_UP)


def _stale(conn: Any, pushes: bool) -> bool:
    """Whether an idle kept connection must be replaced: the server closed it, or it
    holds data nobody read (read by the event loop but not parsed, or not read yet).
    Where the server may push (RESP3 with maintenance notifications) pending data is
    left for the next read, as redis-py's pools do."""
    events = _socket_events(conn)
    if events & _HANG_UP:
        return True
    if pushes and str(conn.protocol) == "3":
        return False
    reader = conn._reader
    return bool(events & _READABLE or reader is not None and reader._buffer)


def packing(conn: Any) -> int:
    """How ``pack`` packs for an asyncio ``conn``: redis.asyncio packs in Python only,
    and hiredis packs the same bytes where str is strict UTF-8."""
    return BY_HIREDIS if _hiredis_pack is not None and utf8_strict(conn.encoder) else BY_ENCODER


async def _send(client: Any, conn: Any, request: Request | list[Request]) -> Any:
    """One request (or a pipelined list) on ``conn``: one write, its replies read."""
    how = packing(conn)
    if type(request) is ScriptCall:
        plan = attempts(request, client.connection_pool)  # FCALL, LOAD if missing; else EVALSHA(_RO), EVAL(_RO)
        sent, step = next(plan)
        while True:
            reply = (await _exchange(conn, pack(conn, how, sent), 1, request))[0]
            if not step and not isinstance(reply, ResponseError):
                return reply
            sent, step = plan.send(reply)  # raises the script's error when nothing follows
    if type(request) is Transaction:
        commands = request.commands
        packed = b"".join([_MULTI, *[pack(conn, how, command) for command in commands], _EXEC])
        replies = await _exchange(conn, packed, len(commands) + 2, request)
        return transaction_result(client.response_callbacks, commands, replies)
    if type(request) is Command:
        reply = (await _exchange(conn, pack(conn, how, request.args), 1, request))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return parsed(client.response_callbacks, request.args, reply)
    requests: list[Any] = request  # type: ignore[assignment]
    pool = client.connection_pool
    read_only = read_only_form(pool)
    packed = b"".join([pack(conn, how, wire_args(item, read_only)) for item in requests])
    replies = await _exchange(conn, packed, len(requests), requests)
    again = resend_plan(requests, replies)
    if again:  # in one more round trip
        if any(refused_read_only(replies[position]) for position in again):
            mark_plain(pool)
        packed = b"".join([pack(conn, how, resend_args(requests[position], replies[position], read_only))
                           for position in again])
        for position, reply in zip(again, await _exchange(conn, packed, len(again), [requests[p] for p in again])):
            replies[position] = reply
    return pipelined_result(client.response_callbacks, requests, replies)


async def _exchange(conn: Any, packed: bytes, count: int, request: Any) -> list[Any]:
    """Write ``packed`` on ``conn`` and read ``count`` replies, error replies included as
    exceptions; a failed attempt is sent again per the sync driver's rules
    (``retry_pause``).

    On a plain connection without health checks the write and the reads run under one
    socket timeout: redis.asyncio spends one timer per reply and, before Python 3.12, a
    task per write (``asyncio.wait_for``), more than the rest of a get by pk.  The
    server answers a request's commands in one burst once it has run them all, so the
    first reply's wait is the wait.  Other connections go through their own
    ``send_packed_command`` and ``read_response``.
    """
    failures = 0
    while True:
        connecting, reading = True, False
        try:
            if not conn.is_connected:
                await conn.connect()
            elif conn.health_check_interval:
                await conn.check_health()
            connecting = False
            if conn._writer is None:  # closed meanwhile by another task: nothing is sent yet
                raise RedisConnectionError("the connection was closed before the write")
            kind = type(conn)
            if kind.read_response is _PLAIN_READ and kind.send_packed_command is _PLAIN_SEND \
                    and not conn.health_check_interval:
                async with async_timeout(conn.socket_timeout):
                    conn._writer.writelines((packed,))
                    await conn._writer.drain()
                    reading = True
                    parser = conn._parser
                    return [await parser.read_response() for _ in range(count)]
            await conn.send_packed_command((packed,), check_health=False)
            reading = True
            return await _read(conn, count)
        except (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError) as exc:
            await conn.disconnect(nowait=True)
            failures += 1
            error = _as_redis_error(conn, exc, reading)
            pause = retry_pause(conn.retry, error, connecting, reading, request, failures)
            if pause > 0:
                await asyncio.sleep(pause)
        except BaseException:  # cancelled mid-request, say: the connection's state is unknown
            await conn.disconnect(nowait=True)
            raise


def _as_redis_error(conn: Any, exc: BaseException, reading: bool) -> BaseException:
    """A socket-level failure of the plain path as redis.asyncio's connection words it."""
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        error: BaseException = RedisTimeoutError(
            f"Timeout reading from {conn._host_error()}" if reading else "Timeout writing to socket")
    elif reading:
        error = RedisConnectionError(f"Error while reading from {conn._host_error()} : {exc.args}")
    else:
        error = RedisConnectionError(f"Error {exc.args[0] if exc.args else 'UNKNOWN'} while writing to socket.")
    error.__cause__ = exc
    return error


_PLAIN_READ = AbstractConnection.read_response
_PLAIN_SEND = AbstractConnection.send_packed_command


async def _read(conn: Any, count: int) -> list[Any]:
    """``count`` replies through the connection's ``read_response``, error replies
    included as exceptions."""
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(await conn.read_response())
        except ResponseError as exc:
            replies.append(exc)
    return replies


async def _execute_generic(client: Any, request: Request | list[Request]) -> Any:
    """The request through the client's own ``execute_command`` and pipelines."""
    if type(request) is list:
        holder = getattr(client, "connection_pool", client)
        read_only = read_only_form(holder)
        pipe = client.pipeline(transaction=False)
        for item in request:
            pipe.execute_command(*wire_args(item, read_only))
        replies = list(await pipe.execute(raise_on_error=False))
        again = resend_plan(request, replies)  # in the list's order where it matters (WAIT)
        if again:
            if any(refused_read_only(replies[position]) for position in again):
                mark_plain(holder)
            pipe = client.pipeline(transaction=False)
            for position in again:
                pipe.execute_command(*resend_args(request[position], replies[position], read_only))
            for position, reply in zip(again, await pipe.execute(raise_on_error=False)):
                replies[position] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
    if type(request) is ScriptCall:
        plan = attempts(request, getattr(client, "connection_pool", client))
        sent, step = next(plan)
        while True:
            try:
                reply = await client.execute_command(*sent)
            except ResponseError as exc:
                reply = exc
            else:
                if not step:
                    return reply
            sent, step = plan.send(reply)  # raises the script's error when nothing follows
    if type(request) is Transaction:
        pipe = client.pipeline(transaction=True)
        for command in request.commands:
            pipe.execute_command(*command)
        return await pipe.execute()
    assert type(request) is Command
    return await client.execute_command(*request.args)
