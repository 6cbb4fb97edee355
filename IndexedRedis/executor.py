"""The synchronous driver: runs a flow from ``operations`` against a redis-py client."""

from __future__ import annotations

from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from .operations import Command, Flow, Request, ScriptCall

__all__ = ["run", "execute"]

T = TypeVar("T")


def execute(client: Any, request: Request) -> Any:
    """Send one request; a script the server lacks is sent whole (which also caches it)."""
    if type(request) is ScriptCall:
        script = request.script
        try:
            return client.execute_command(*script.evalsha_args(request.keys, request.args))
        except NoScriptError:
            return client.execute_command(*script.eval_args(request.keys, request.args))
    assert type(request) is Command
    return client.execute_command(*request.args)


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
