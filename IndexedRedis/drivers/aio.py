"""The asyncio driver: sends a flow's requests to a ``redis.asyncio`` client."""

from __future__ import annotations

from typing import Any

from redis.exceptions import NoScriptError

from ..flows.requests import Command, Request, ScriptCall, Transaction

__all__ = ["execute"]


async def execute(client: Any, request: Request | list[Request]) -> Any:
    """Send one request, or a list of them in one pipelined round trip."""
    if type(request) is list:
        pipe = client.pipeline(transaction=False)
        for item in request:
            if type(item) is ScriptCall:
                pipe.execute_command(*item.script.evalsha_args(item.keys, item.args))
            else:
                pipe.execute_command(*item.args)  # type: ignore[union-attr]
        replies = await pipe.execute(raise_on_error=False)
        for position, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                replies[position] = await execute(client, request[position])
            elif isinstance(reply, Exception):
                raise reply
        return list(replies)
    if type(request) is ScriptCall:
        try:
            return await client.execute_command(*request.script.evalsha_args(request.keys, request.args))
        except NoScriptError:
            return await client.execute_command(*request.script.eval_args(request.keys, request.args))
    if type(request) is Transaction:
        pipe = client.pipeline(transaction=True)
        for command in request.commands:
            pipe.execute_command(*command)
        return await pipe.execute()
    assert type(request) is Command
    return await client.execute_command(*request.args)
