"""The synchronous driver: sends a flow's requests to a redis-py client, one round trip each."""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from typing import Any, TypeVar

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..flows.requests import Command, Flow, Request, ScriptCall, Transaction

__all__ = ["run", "execute"]

T = TypeVar("T")


def execute(client: Any, request: Request | list[Request]) -> Any:
    """Send one request, or a list of them in one pipelined round trip.

    A script the server lacks is sent whole (which also caches it there).
    """
    if type(request) is list:
        return _execute_pipelined(client, request)
    if type(request) is ScriptCall:
        script = request.script
        direct = type(client) is redis.Redis
        try:
            if direct:
                return _direct(client, script.evalsha_args(request.keys, request.args))
            return client.execute_command(*script.evalsha_args(request.keys, request.args))
        except NoScriptError:
            if direct:
                return _direct(client, script.eval_args(request.keys, request.args))
            return client.execute_command(*script.eval_args(request.keys, request.args))
    if type(request) is Transaction:
        if type(client) is redis.Redis:
            return _direct_transaction(client, request.commands)
        pipe = client.pipeline(transaction=True)
        for command in request.commands:
            pipe.execute_command(*command)
        return pipe.execute()
    assert type(request) is Command
    return client.execute_command(*request.args)


_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def _direct_transaction(client: redis.Redis, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
    """MULTI, the commands, EXEC: written at once, EXEC's reply returned."""

    def pack(conn: Any) -> bytes:
        packed = [_MULTI]
        for command in commands:
            packed += conn.pack_command(*command)
        packed.append(_EXEC)
        return b"".join(packed)  # one write, not one per chunk

    replies = _on_connection(client, pack, len(commands) + 2)
    return list(replies[-1])


def _direct(client: redis.Redis, args: tuple[Any, ...]) -> Any:
    """One command on a pooled connection, without redis-py's per-command extras.

    A script call is the hot path of every operation, and the generic machinery of
    ``execute_command`` (response callbacks, instrumentation, blanket retries) costs
    more than the server spends on it.
    """
    return _on_connection(client, lambda conn: b"".join(conn.pack_command(*args)), 1)[0]


def _on_connection(client: redis.Redis, pack: Any, replies: int) -> list[Any]:
    """Write what ``pack(connection)`` builds on a connection; read ``replies`` replies.

    A connection that fails while *sending* is replaced once (nothing ran yet); a
    failure while reading is raised, because a script may have run and must not run
    twice.  Error replies are read to the last one before the first is raised, so the
    connection never keeps unread replies.
    """
    pool = client.connection_pool
    conn = _pinned(pool)
    pinned = conn is not None
    if conn is None:
        conn = _checkout(pool)
    try:
        packed = pack(conn)
        try:
            conn.send_packed_command([packed])
        except (RedisConnectionError, RedisTimeoutError, OSError):
            conn.disconnect()
            conn.send_packed_command([packed])  # reconnects
        if replies == 1:
            return [conn.read_response()]
        out: list[Any] = []
        error: ResponseError | None = None
        for _ in range(replies):
            try:
                out.append(conn.read_response())
            except ResponseError as exc:
                out.append(exc)
                error = error or exc
        if error is not None:
            raise error
        return out
    except ResponseError:
        raise
    except BaseException:  # the connection's state is unknown: drop it
        conn.disconnect()
        raise
    finally:
        if not pinned:
            pool.release(conn)


class _ThreadConnections:
    """The connections one thread keeps checked out: id(pool) -> (weak reference to the
    pool, its connection, or None where the pool does not take part).  Given back to
    their pools when the thread ends (its thread-local state is dropped); an entry
    goes when its pool is garbage collected."""

    __slots__ = ("conns",)

    def __init__(self) -> None:
        self.conns: dict[int, tuple[weakref.ref[Any], Any]] = {}

    def __del__(self) -> None:
        for ref, conn in list(self.conns.values()):
            pool = ref()
            if pool is not None and conn is not None:
                try:
                    _unpin(pool, conn)
                except Exception:  # interpreter shutdown: nothing left to give back to
                    pass


_local = threading.local()
_budget_lock = threading.Lock()
_budget: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # pool -> threads holding one


def _pinned(pool: Any) -> Any:
    """This thread's own connection of ``pool``, or None where the pool must hand out
    connections per command.

    As peewee does with database connections, each thread keeps one connection checked
    out instead of taking one from the pool and giving it back on every operation (with
    redis-py's bookkeeping, that costs about a fifth of a get by pk).  At most half of a
    pool's ``max_connections`` are held this way, so the rest stay free for pipelines
    and for the threads beyond that; only plain ``ConnectionPool``s without client-side
    caching or credential providers (which rely on seeing every release) take part.
    """
    held = getattr(_local, "held", None)
    if held is None:
        held = _local.held = _ThreadConnections()
    entry = held.conns.get(id(pool))
    if entry is not None and entry[0]() is pool:
        return entry[1]
    conns, key = held.conns, id(pool)
    conn = _pin(pool)
    conns[key] = (weakref.ref(pool, lambda _: conns.pop(key, None)), conn)
    return conn


def _pin(pool: Any) -> Any:
    if not (type(pool) is redis.ConnectionPool and getattr(pool, "cache", None) is None
            and pool.connection_kwargs.get("credential_provider") is None):
        return None
    with _budget_lock:
        holding = _budget.get(pool, 0)
        if holding >= pool.max_connections // 2:
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


_takes_no_command: dict[type, bool] = {}


def _checkout(pool: Any) -> Any:
    """A connection from the pool: redis-py before 5.3 requires a command name (unused
    by its pools), later versions deprecate passing one."""
    kind = type(pool)
    plain = _takes_no_command.get(kind)
    if plain is None:
        parameter = inspect.signature(kind.get_connection).parameters.get("command_name")
        plain = parameter is None or parameter.default is not inspect.Parameter.empty
        _takes_no_command[kind] = plain
    return pool.get_connection() if plain else pool.get_connection("EVALSHA")


def _forget_after_fork() -> None:
    """In a forked child: the parent's threads and their connections are not ours."""
    held = getattr(_local, "held", None)
    if held is not None:
        held.conns.clear()
    _local.held = None
    _budget.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _execute_pipelined(client: Any, requests: list[Request]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for request in requests:
        if type(request) is ScriptCall:
            pipe.execute_command(*request.script.evalsha_args(request.keys, request.args))
        else:
            pipe.execute_command(*request.args)  # type: ignore[union-attr]
    replies = pipe.execute(raise_on_error=False)
    for position, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):
            replies[position] = execute(client, requests[position])
        elif isinstance(reply, Exception):
            raise reply
    return list(replies)


def run(client: Any, flow: Flow[T]) -> T:
    """Drive a flow to its end, one request (one round trip) at a time."""
    try:
        request = next(flow)
        while True:
            try:
                reply = execute(client, request)
            except Exception as exc:  # let the flow clean up (e.g. abandon a reset)
                request = flow.throw(exc)
            else:
                request = flow.send(reply)
    except StopIteration as stop:
        return stop.value
