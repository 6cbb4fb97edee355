"""The synchronous driver: runs a flow from ``operations`` against a redis-py client."""

from __future__ import annotations

from typing import Any, TypeVar

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .operations import Command, Flow, Request, ScriptCall, Transaction

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
    """Write what ``pack(connection)`` builds on a pooled connection; read ``replies``.

    A connection that fails while *sending* is replaced once (nothing ran yet); a
    failure while reading is raised, because a script may have run and must not run
    twice.
    """
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        packed = pack(conn)
        try:
            conn.send_packed_command([packed])
        except (RedisConnectionError, RedisTimeoutError, OSError):
            conn.disconnect()
            conn.send_packed_command([packed])  # reconnects
        return [conn.read_response() for _ in range(replies)]
    except (RedisConnectionError, RedisTimeoutError, OSError):
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


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
