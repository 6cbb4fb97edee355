"""The synchronous driver: sends a flow's requests to a redis-py client, one round trip each.

For a plain ``redis.Redis`` a request is packed here and written at once on a
connection of the client (its single connection, this thread's pinned one, or one
checked out of the pool), and its replies are read back without ``execute_command``'s
per-command machinery.  What that machinery does and a flow needs is done here too: a
dead idle connection is replaced before anything is written on it, the client's
``Retry`` policy is honoured where sending again is safe, and response callbacks
apply to plain commands.  Other clients (subclasses, pipelines) go through
``execute_command``.
"""

from __future__ import annotations

import inspect
import os
import select
import socket
import threading
import time
import weakref
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import redis
from redis.connection import AbstractConnection, HiredisRespSerializer, PythonRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..flows.requests import Command, Request, ScriptCall, Transaction
from .scriptforms import (
    attempts,
    first_args,
    mark_plain,
    read_only_form,
    refused_read_only,
    sent_read_only,
    whole_args,
)

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py packs in Python then
    _hiredis_pack = None  # type: ignore[assignment]

__all__ = ["execute"]


#: Threads of one process that keep a connection of one pool checked out: at most half
#: the pool's ``max_connections`` (so the rest stay free for the other threads and for
#: pipelines), and never more than this.  redis-py 5's default bound is 2**31, so half
#: of it bounds nothing: a process with 500 threads would hold 500 server connections
#: open for good, each a file descriptor here and a client (buffers, a CLIENT LIST
#: line) on the server.  A few dozen threads already keep the GIL busy, so the threads
#: beyond the cap pay a checkout per request (about 10 µs of redis-py's bookkeeping)
#: and share the pool's idle connections instead.
PIN_LIMIT = 64


def execute(client: Any, request: Request | list[Request]) -> Any:
    """Send one request, or a list of them in one pipelined round trip.

    A script the server lacks is sent whole (which also caches it there).
    """
    if type(request) is ScriptCall and request.wait is not None:  # WAIT goes right after it
        return execute(client, [replace(request, wait=None), Command(("WAIT", *request.wait))])
    if type(client) is not redis.Redis:
        return _execute_generic(client, request)
    conn = client.connection
    if conn is not None:  # single_connection_client=True: its connection, never the pool
        return _on_single_connection(client, conn, request)
    pool = client.connection_pool
    slot = _slot(pool)
    conn = slot.conn
    if conn is None:
        conn = _checkout(pool)  # the pool replaces a dead connection before handing it out
        try:
            return _send(client, conn, request)
        finally:
            pool.release(conn)
    sock = conn._sock
    if sock is not None:
        if sock is not slot.sock:
            slot.watch(sock)
        if slot.poller.poll(0):  # idle yet readable: closed by the server, stale data, or pushes
            _drop_if_stale(conn, slot.pushes)
    if not slot.pushes:
        return _send(client, conn, request)
    try:
        return _send(client, conn, request)
    finally:
        if conn.should_reconnect():  # a maintenance notification moved the endpoint
            conn.disconnect()


def _on_single_connection(client: redis.Redis, conn: Any, request: Request | list[Request]) -> Any:
    """The request on a single-connection client's own connection, under the client's
    lock (redis-py 5.0 has none: such a client is not thread-safe there)."""
    with getattr(client, "single_connection_lock", None) or nullcontext():
        if _connected(conn):
            pool = client.connection_pool
            _drop_if_stale(conn, getattr(pool, "cache", None) is not None or _maint_notifications(pool))
        try:
            return _send(client, conn, request)
        finally:
            moved = getattr(conn, "should_reconnect", None)  # redis-py 6+: a maintenance notification
            if moved is not None and moved():
                conn.disconnect()


def _drop_if_stale(conn: Any, pushes_expected: bool) -> None:
    """Disconnect an idle ``conn`` that the server closed or that holds unread data (a
    reply nobody read), as redis-py's pools do before handing one out; the next write
    reconnects.  Where the server may push (client-side caching, maintenance
    notifications), pending data is left for the next read to handle."""
    try:
        if conn.can_read() and not pushes_expected:
            conn.disconnect()
    except (RedisConnectionError, RedisTimeoutError, OSError):
        conn.disconnect()


_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def _send(client: redis.Redis, conn: Any, request: Request | list[Request]) -> Any:
    """One request (or a pipelined list) on ``conn``: one write, its replies read."""
    how = packing(conn)
    if type(request) is ScriptCall:
        plan = attempts(request, client.connection_pool)  # FCALL, LOAD if missing; else EVALSHA(_RO), EVAL(_RO)
        sent, step = next(plan)
        while True:
            reply = _exchange(conn, pack(conn, how, sent), 1, request)[0]
            if not step and not isinstance(reply, ResponseError):
                return reply
            sent, step = plan.send(reply)  # raises the script's error when nothing follows
    if type(request) is Transaction:
        commands = request.commands
        packed = b"".join([_MULTI, *[pack(conn, how, command) for command in commands], _EXEC])
        replies = _exchange(conn, packed, len(commands) + 2, request)
        return transaction_result(client.response_callbacks, commands, replies)
    if type(request) is Command:
        reply = _exchange(conn, pack(conn, how, request.args), 1, request)[0]
        if isinstance(reply, ResponseError):
            raise reply
        return parsed(client.response_callbacks, request.args, reply)
    requests: list[Any] = request  # type: ignore[assignment]
    pool = client.connection_pool
    read_only = read_only_form(pool)
    packed = b"".join([pack(conn, how, wire_args(item, read_only)) for item in requests])
    replies = _exchange(conn, packed, len(requests), requests)
    again = resend_plan(requests, replies)
    if again:  # in one more round trip
        if any(refused_read_only(replies[position]) for position in again):
            mark_plain(pool)
        packed = b"".join([pack(conn, how, resend_args(requests[position], replies[position], read_only))
                           for position in again])
        for position, reply in zip(again, _exchange(conn, packed, len(again), [requests[p] for p in again])):
            replies[position] = reply
    return pipelined_result(client.response_callbacks, requests, replies)


#: How ``pack`` packs for a connection: as redis-py's hiredis packer does, as its
#: Python packer does (with the connection's encoder), or through ``pack_command``.
BY_CONNECTION, BY_HIREDIS, BY_ENCODER = range(3)
_PACKERS = {HiredisRespSerializer: BY_HIREDIS, PythonRespSerializer: BY_ENCODER}


def utf8_strict(encoder: Any) -> bool:
    """Whether ``encoder`` turns str into bytes as hiredis's packer does (strict UTF-8)."""
    return encoder.encoding.lower() in ("utf-8", "utf8") and encoder.encoding_errors == "strict"


def packing(conn: Any) -> int:
    """How ``pack`` packs for ``conn``, byte for byte as its own packer would.

    redis-py before 8.2 hands every str to hiredis as UTF-8, whatever the connection's
    encoding; from 8.2 on its hiredis packer encodes with the connection's encoder first
    (its ``_encode``), which differs from UTF-8 for another encoding (latin-1, say).
    """
    packer = getattr(conn, "_command_packer", None)
    how = _PACKERS.get(type(packer), BY_CONNECTION)
    if how == BY_HIREDIS and getattr(packer, "_encode", None) is not None and not utf8_strict(conn.encoder):
        return BY_ENCODER
    return how


def pack(conn: Any, how: int, args: Sequence[Any]) -> bytes:
    """One command in RESP, in one buffer, byte for byte as ``conn.pack_command`` packs it.

    redis-py's packers convert and check every argument in Python, then hand back
    chunks to join: more than the rest of a get by pk costs on the client.  Hiredis's C
    packer takes str (as UTF-8), bytes, int and float itself; the Python one is redone
    here with one format per argument.  A command name with anything but ASCII letters
    and underscores (``EVALSHA_RO``; redis-py splits a name at whitespace) goes through
    ``pack_command``.
    """
    name = args[0]
    if how and type(name) is str and name.isascii() and name.replace("_", "").isalpha():
        if how == BY_HIREDIS:
            try:
                return _hiredis_pack(tuple(args))
            except TypeError:  # bytearray, bool, None...: redis-py converts or refuses them
                pass
        else:
            encode = conn.encoder.encode
            out = [b"*%d\r\n" % len(args)]
            for arg in args:
                value = encode(arg)
                out += (b"$%d\r\n" % len(value), value, b"\r\n")
            return b"".join(out)
    return b"".join(conn.pack_command(*args))


def wire_args(request: Any, read_only: bool = False) -> tuple[Any, ...]:
    """What a ScriptCall or Command of a pipelined list sends first (``read_only``: the
    server takes EVALSHA_RO, see ``scriptforms``)."""
    if type(request) is ScriptCall:
        return first_args(request, read_only)
    return request.args


def resend_plan(requests: list[Any], replies: list[Any]) -> list[int]:
    """The positions of a pipelined list to send again once the server answered NOSCRIPT
    (those scripts did not run), or none if another reply failed (the list fails as a
    whole then).

    Everything from the first unknown script on, if all after it are reads or unknown
    scripts too: the list then runs in its order (a WAIT after a write waits for it).
    Else the unknown scripts alone, which then run after the rest of the list.
    """
    missing: list[int] = []
    for position, reply in enumerate(replies):
        if type(requests[position]) is ScriptCall and (isinstance(reply, NoScriptError) or refused_read_only(reply)):
            missing.append(position)
        elif isinstance(reply, ResponseError):
            return []
    if not missing:
        return []
    rest = range(missing[0], len(requests))
    resent = set(missing)
    if all(requests[position].readonly or position in resent for position in rest):
        return list(rest)
    return missing


def resend_args(request: Any, reply: Any, read_only: bool = False) -> tuple[Any, ...]:
    """What a request of a pipelined list sends again: an unknown script whole (in the
    form first sent), a script whose read-only form was refused whole in the plain one."""
    if isinstance(reply, NoScriptError):
        return whole_args(request, sent_read_only(request, read_only))
    if type(request) is ScriptCall and refused_read_only(reply):
        return whole_args(request, False)
    return wire_args(request, read_only)


def pipelined_result(callbacks: Any, requests: list[Any], replies: list[Any]) -> list[Any]:
    """The replies of a pipelined list, the first error raised once all were read."""
    for position, reply in enumerate(replies):
        if isinstance(reply, ResponseError):
            raise reply
        if type(requests[position]) is Command:
            replies[position] = parsed(callbacks, requests[position].args, reply)
    return replies


def transaction_result(callbacks: Any, commands: Sequence[Sequence[Any]], replies: list[Any]) -> list[Any]:
    """EXEC's reply, each command's through its response callback; a command that failed
    to queue (EXECABORT) or to run raises its error."""
    results = replies[-1]
    if not isinstance(results, list):
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        raise ResponseError(f"EXEC answered {results!r}")
    out = []
    for command, result in zip(commands, results):
        if isinstance(result, ResponseError):
            raise result
        out.append(parsed(callbacks, command, result))
    return out


def parsed(callbacks: Any, args: Sequence[Any], reply: Any) -> Any:
    """``reply`` as ``execute_command`` returns it: through the client's response
    callback for the command, if any (redis-py looks them up by str names only)."""
    name = args[0]
    if type(name) is str:
        callback = callbacks.get(name)  # a CaseInsensitiveDict
        if callback is not None:
            return callback(reply)
    return reply


def _exchange(conn: Any, packed: bytes, count: int, request: Any) -> list[Any]:
    """Write ``packed`` on ``conn`` and read ``count`` replies (error replies as
    exceptions, all read so the connection never keeps unread replies).

    A failed attempt drops the connection, and the request is sent again on a fresh
    one as the connection's ``Retry`` allows, but only where that cannot run anything
    twice (see ``may_resend``).
    """
    failures = 0
    while True:
        connecting, reading = True, False
        try:
            if _connected(conn):
                conn.check_health()  # a PING only if health_check_interval says so
            else:
                conn.connect()
            connecting = False
            conn.send_packed_command((packed,), check_health=False)
            reading = True
            return _read(conn, count)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            conn.disconnect()
            failures += 1
            pause = retry_pause(conn.retry, exc, connecting, reading, request, failures)
            if pause > 0:
                time.sleep(pause)
        except BaseException:  # the connection's state is unknown
            conn.disconnect()
            raise


_PLAIN_READ = AbstractConnection.read_response


def _read(conn: Any, count: int) -> list[Any]:
    """``count`` replies from ``conn``, error replies included as exceptions.

    A plain connection without health checks is read through its parser, as its own
    ``read_response`` does minus the per-reply bookkeeping; others (Sentinel's, which
    turns a demoted master's READONLY into a reconnect, client-side caching proxies)
    through ``read_response``.
    """
    if type(conn).read_response is _PLAIN_READ and not conn.health_check_interval:
        parser = conn._parser
        try:
            if count == 1:
                return [parser.read_response()]
            return [parser.read_response() for _ in range(count)]
        except OSError as exc:  # as AbstractConnection.read_response words them
            conn.disconnect()
            if isinstance(exc, socket.timeout):
                raise RedisTimeoutError(f"Timeout reading from {conn._host_error()}") from exc
            raise RedisConnectionError(f"Error while reading from {conn._host_error()} : {exc.args}") from exc
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(conn.read_response())
        except ResponseError as exc:
            replies.append(exc)
    return replies


def may_resend(request: Any, connecting: bool, reading: bool, exc: BaseException) -> bool:
    """Whether a request whose attempt failed with ``exc`` may be sent again.

    Reads may.  So may anything that failed before it was written, or while being
    written if it is one command or one MULTI/EXEC (the server runs nothing it has not
    read whole); not the rest of a pipelined list, whose first commands may have run.
    A write that failed while its reply was read may have run.  A replica's READONLY
    refusal (a Sentinel master that was demoted) ran nothing.
    """
    if connecting or isinstance(exc.__context__, ReadOnlyError):
        return True
    if type(request) is list:
        return all(item.readonly for item in request) or (not reading and len(request) == 1)
    return not reading or bool(request.readonly)


def retry_pause(retry: Any, exc: BaseException, connecting: bool, reading: bool, request: Any,
                failures: int) -> float:
    """Seconds to wait before sending ``request`` again after its ``failures``-th failed
    attempt; raises when it must not be sent again.

    Uses redis-py's ``Retry`` (``_retries``, ``_supported_errors``, ``_backoff``: the
    same in redis-py 5.0 to 8.1), on the hot path only once something failed.
    """
    if not may_resend(request, connecting, reading, exc):
        kind = RedisTimeoutError if isinstance(exc, (RedisTimeoutError, socket.timeout)) else RedisConnectionError
        raise kind(f"{exc} (the connection failed after a write was sent: it may or may not have been "
                   f"applied, and it was not sent again)") from exc
    if not isinstance(exc, retry._supported_errors) or 0 <= retry._retries < failures:
        raise exc
    if failures == 1:
        retry._backoff.reset()
    return float(retry._backoff.compute(failures))


if hasattr(AbstractConnection, "is_connected"):
    def _connected(conn: Any) -> bool:
        return bool(conn.is_connected)
else:  # redis-py 5.0
    def _connected(conn: Any) -> bool:
        return conn._sock is not None


def _maint_notifications(pool: Any) -> bool:
    """Whether a pool handles maintenance notifications (redis-py 6+)."""
    enabled = getattr(pool, "maint_notifications_enabled", None)
    return enabled is not None and bool(enabled())


class _Slot:
    """One thread's use of one pool: the connection it keeps checked out (None: one
    per request), a poller watching that connection's socket, and whether the server
    may push to it (maintenance notifications, redis-py 6+'s default with RESP3)."""

    __slots__ = ("pool", "conn", "pushes", "sock", "poller")

    def __init__(self, pool: weakref.ref[Any], conn: Any, pushes: bool) -> None:
        self.pool = pool
        self.conn = conn
        self.pushes = pushes
        self.sock: Any = None
        self.poller: Any = None

    def watch(self, sock: socket.socket) -> None:
        """Poll this socket from now on (a reconnect brings a new one).  One poll(2) of
        a registered descriptor is about half a microsecond; ``can_read()`` costs five
        times that, so it only runs when the poll says the socket is readable."""
        self.sock = sock
        if hasattr(select, "poll"):
            self.poller = select.poll()
            self.poller.register(sock, select.POLLIN)  # POLLHUP and POLLERR come anyway
        else:
            self.poller = _SelectPoller(sock)


class _SelectPoller:
    """``select.poll`` where the platform has none."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def poll(self, timeout: float) -> bool:
        return bool(select.select((self.sock,), (), (), timeout)[0])


class _ThreadSlots:
    """One thread's slots by id(pool).  When the thread ends (its thread-local state is
    dropped) the connections go back to their pools; a slot goes when its pool is
    garbage collected."""

    __slots__ = ("by_pool",)

    def __init__(self) -> None:
        self.by_pool: dict[int, _Slot] = {}

    def __del__(self) -> None:
        for slot in list(self.by_pool.values()):
            pool = slot.pool()
            if pool is not None and slot.conn is not None:
                try:
                    _unpin(pool, slot.conn)
                except Exception:  # interpreter shutdown: nothing left to give back to
                    pass


class _Local(threading.local):
    def __init__(self) -> None:
        self.slots = _ThreadSlots()


_local = _Local()
_budget_lock = threading.Lock()
_budget: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # pool -> threads holding one


def _pinned(pool: Any) -> Any:
    """This thread's own connection of ``pool``, or None where the pool hands out one
    per request (the cluster driver's per-node pools take part too)."""
    return _slot(pool).conn


def _slot(pool: Any) -> _Slot:
    slot = _local.slots.by_pool.get(id(pool))
    if slot is None or slot.pool() is not pool:
        slot = _new_slot(pool)
    return slot


def _new_slot(pool: Any) -> _Slot:
    """This thread's new slot for ``pool``, with a connection to keep if it may keep one.

    As peewee does with database connections, each thread keeps one connection checked
    out instead of taking one from the pool and giving it back on every request (with
    redis-py's bookkeeping, that costs a fifth of a get by pk).  At most
    min(max_connections // 2, PIN_LIMIT) threads do so per pool, so connections stay
    free for pipelines and for the other threads.  Only plain ``ConnectionPool``s
    without client-side caching or credential providers take part: those rely on
    seeing each checkout and release (cache bookkeeping, re-authentication), as
    blocking pools (a fixed number of slots for waiters) and Sentinel's (a master that
    moves) do.  A kept connection that a maintenance notification marks for reconnect
    reconnects after its request, as ``execute_command`` does.
    """
    by_pool, key = _local.slots.by_pool, id(pool)
    slot = _Slot(weakref.ref(pool, lambda _: by_pool.pop(key, None)), _pin(pool), _maint_notifications(pool))
    by_pool[key] = slot
    return slot


def _pin(pool: Any) -> Any:
    if not (type(pool) is redis.ConnectionPool and getattr(pool, "cache", None) is None
            and pool.connection_kwargs.get("credential_provider") is None):
        return None
    with _budget_lock:
        holding = _budget.get(pool, 0)
        if holding >= min(pool.max_connections // 2, PIN_LIMIT):
            return None
        _budget[pool] = holding + 1
    try:
        return _checkout(pool)
    except BaseException:
        with _budget_lock:
            _budget[pool] -= 1
        raise


def _unpin(pool: Any, conn: Any) -> None:
    with _budget_lock:
        if _budget.get(pool, 0) > 0:
            _budget[pool] -= 1
    pool.release(conn)


_wants_command_name: dict[type, bool] = {}


def wants_command_name(kind: type) -> bool:
    """Whether a pool class's ``get_connection`` requires a command name (unused by the
    pools): redis-py before 5.3 does, sync and asyncio alike; later versions deprecate
    passing one."""
    wants = _wants_command_name.get(kind)
    if wants is None:
        parameter = inspect.signature(kind.get_connection).parameters.get("command_name")  # type: ignore[attr-defined]
        wants = _wants_command_name[kind] = parameter is not None and parameter.default is inspect.Parameter.empty
    return wants


def _checkout(pool: Any) -> Any:
    """A connection from the pool, connected and checked (a dead one is replaced)."""
    return pool.get_connection("EVALSHA") if wants_command_name(type(pool)) else pool.get_connection()


def _forget_after_fork() -> None:
    """In a forked child: the parent's threads and their connections are not ours."""
    _local.slots.by_pool.clear()
    _local.slots = _ThreadSlots()
    _budget.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _execute_generic(client: Any, request: Request | list[Request]) -> Any:
    """The request through the client's own ``execute_command`` and pipelines."""
    if type(request) is list:
        holder = getattr(client, "connection_pool", client)
        read_only = read_only_form(holder)
        pipe = client.pipeline(transaction=False)
        for item in request:
            pipe.execute_command(*wire_args(item, read_only))
        replies = list(pipe.execute(raise_on_error=False))
        again = resend_plan(request, replies)  # in the list's order where it matters (WAIT)
        if again:
            if any(refused_read_only(replies[position]) for position in again):
                mark_plain(holder)
            pipe = client.pipeline(transaction=False)
            for position in again:
                pipe.execute_command(*resend_args(request[position], replies[position], read_only))
            for position, reply in zip(again, pipe.execute(raise_on_error=False)):
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
                reply = client.execute_command(*sent)
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
        return pipe.execute()
    assert type(request) is Command
    return client.execute_command(*request.args)
