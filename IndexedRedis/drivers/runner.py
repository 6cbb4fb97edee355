"""Running flows: the loop that sends each request a flow yields and sends the reply
back in, for sync and asyncio clients.

A request goes to its ``route`` (a client) or, without one, to the client the flow
was started on.  The per-request I/O is the drivers' (``sync``, ``aio``, ``cluster``);
a failed request is thrown into the flow, so it can clean up (abandon a reset) or
handle the error.  Requests to the client-side cache (``CacheRead``, ``CacheStore``)
are answered here, the same way for every driver (``cache.registry.answer``: memory,
and a non-blocking poll of the tracking connection).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from ..cache.registry import answer
from ..flows.requests import CacheRead, CacheStore, Emit, Flow, Request
from . import aio, sync

__all__ = ["run", "iterate", "arun", "aiterate"]

T = TypeVar("T")


_sync_executors: dict[type, Callable[[Any, Any], Any]] = {}
_async_executors: dict[type, Callable[[Any, Any], Awaitable[Any]]] = {}


def _sync_executor(client: Any) -> Callable[[Any, Request | list[Request]], Any]:
    """The sync driver for a client, by its type (cached: a cluster check through
    redis-py's class hierarchy costs more than a whole step of a flow)."""
    kind = type(client)
    found = _sync_executors.get(kind)
    if found is None:
        from . import cluster

        found = _sync_executors[kind] = cluster.execute if issubclass(kind, redis.cluster.RedisCluster) \
            else sync.execute
    return found


def _async_executor(client: Any) -> Callable[[Any, Request | list[Request]], Awaitable[Any]]:
    kind = type(client)
    found = _async_executors.get(kind)
    if found is None:
        from . import cluster

        found = _async_executors[kind] = cluster.aexecute \
            if issubclass(kind, redis.asyncio.cluster.RedisCluster) else aio.execute
    return found


def _target(client: Any, request: Any) -> Any:  # request: Request | list[Request]
    first = request[0] if type(request) is list else request
    return client if first.route is None else first.route


def _drive(client: Any, flow: Flow[Any]) -> Iterator[Any]:
    """Run ``flow`` on sync clients, yielding each Emit's items; returns its result."""
    execute = _sync_executor(client)
    try:
        request = next(flow)
        while True:
            if type(request) is Emit:
                yield from request.items
                request = flow.send(None)
                continue
            target = _target(client, request)
            if type(request) is CacheRead or type(request) is CacheStore:
                request = flow.send(answer(target, request))
                continue
            try:
                reply = (execute if target is client else _sync_executor(target))(target, request)  # type: ignore[arg-type]
            except Exception as exc:
                request = flow.throw(exc)
            else:
                request = flow.send(reply)
    except StopIteration as stop:
        return stop.value


def run(client: Any, flow: Flow[T]) -> T:
    """Drive a flow to its end on a sync client, one request (one round trip) at a time.

    The hot path of every sync operation, so it loops here itself rather than through
    ``_drive`` (a flow that emits items has them dropped)."""
    execute = _sync_executor(client)
    try:
        request = next(flow)
        while True:
            if type(request) is Emit:
                request = flow.send(None)
                continue
            target = _target(client, request)
            if type(request) is CacheRead or type(request) is CacheStore:
                request = flow.send(answer(target, request))
                continue
            try:
                reply = (execute if target is client else _sync_executor(target))(target, request)  # type: ignore[arg-type]
            except Exception as exc:
                request = flow.throw(exc)
            else:
                request = flow.send(reply)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def iterate(client: Any, flow: Flow[Any]) -> Iterator[Any]:
    """The items a flow emits, as it emits them (see ``flows.read.iterate_flow``)."""
    yield from _drive(client, flow)


async def _adrive(client: Any, flow: Flow[Any], result: list[Any]) -> AsyncIterator[Any]:
    """Run ``flow`` on asyncio clients, yielding each Emit's items; its result is
    appended to ``result`` (an async generator returns no value)."""
    execute = _async_executor(client)
    try:
        request = next(flow)
        while True:
            if type(request) is Emit:
                for item in request.items:
                    yield item
                request = flow.send(None)
                continue
            target = _target(client, request)
            if type(request) is CacheRead or type(request) is CacheStore:
                request = flow.send(answer(target, request))
                continue
            try:
                send = execute if target is client else _async_executor(target)
                reply = await send(target, request)  # type: ignore[arg-type]
            except Exception as exc:
                request = flow.throw(exc)
            else:
                request = flow.send(reply)
    except StopIteration as stop:
        result.append(stop.value)


async def arun(client: Any, flow: Flow[T]) -> T:
    """Drive a flow to its end on an asyncio client: ``run``'s loop, awaiting each
    request (as there, looped here rather than through ``_adrive``, since an async
    generator's every step costs more than a step of the flow)."""
    execute = _async_executor(client)
    try:
        request = next(flow)
        while True:
            if type(request) is Emit:
                request = flow.send(None)  # a flow that emits items has them dropped here
                continue
            target = _target(client, request)
            if type(request) is CacheRead or type(request) is CacheStore:
                request = flow.send(answer(target, request))
                continue
            try:
                reply = await (execute if target is client else _async_executor(target))(target, request)  # type: ignore[arg-type]
            except Exception as exc:
                request = flow.throw(exc)
            else:
                request = flow.send(reply)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def aiterate(client: Any, flow: Flow[Any]) -> AsyncIterator[Any]:
    """The items a flow emits, as it emits them, on an asyncio client."""
    return _adrive(client, flow, [])
