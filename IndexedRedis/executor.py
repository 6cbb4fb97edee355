"""The synchronous driver: runs a flow from ``operations`` against a redis-py client."""

from __future__ import annotations

from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from .operations import Command, Flow, Request, ScriptCall

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
        try:
            return client.execute_command(*script.evalsha_args(request.keys, request.args))
        except NoScriptError:
            return client.execute_command(*script.eval_args(request.keys, request.args))
    assert type(request) is Command
    return client.execute_command(*request.args)


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
