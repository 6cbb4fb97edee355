"""Running a flow for a model class or instance, on the sync or the asyncio driver:
the one place where the API's twins (``count`` / ``acount``...) part ways.  Also the
query sets' look into the client-side cache before they run a read flow (a hit costs
no flow at all; a miss runs the flow, which reads and stores)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import eviction, firstuse
from .cache import registry as cache_registry
from .connection import ASYNC_ROUTER, SYNC_ROUTER, server_label
from .drivers import runner
from .exceptions import PermissionDeniedError, ReadOnlyReplicaError, ServerTimeoutError, ServerUnavailableError
from .flows.context import Context
from .flows.requests import Flow
from .options import checked_meta

__all__ = ["run_sync", "run_async", "iterate_sync", "iterate_async", "cached_sync", "cached_async"]

T = TypeVar("T")
MakeFlow = Callable[[Context], Flow[T]]


def _meta(target: Any) -> Any:
    model: Any = target if isinstance(target, type) else type(target)
    meta = model._meta
    if meta is None:  # abstract, or broken with its error deferred (the 6.x switch)
        return checked_meta(model)
    return meta


def _first_use(client: Any) -> None:
    """Read the server's INFO once per client: its eviction policy (see ``eviction``)
    and its version (see ``firstuse``)."""
    firstuse.apply(client, runner.run(client, firstuse.info_flow()), server_label(client))
    eviction.mark_checked(client)


async def _afirst_use(client: Any) -> None:
    firstuse.apply(client, await runner.arun(client, firstuse.info_flow()), server_label(client))
    eviction.mark_checked(client)


_DENIED = ("can't run this command", "no permissions to")  # Redis's ACL refusals, in scripts and out


def _denied(target: Any, exc: ResponseError) -> PermissionDeniedError | None:
    """An ACL refusal as PermissionDeniedError naming the model, or None."""
    text = str(exc)
    if not (isinstance(exc, NoPermissionError) or any(words in text for words in _DENIED)):
        return None
    name = _meta(target).name
    return PermissionDeniedError(
        f"Model {name}: the Redis user is not allowed what this operation needs ({text.split(' script: ')[0]}); "
        f"nothing was written. Grant the commands and keys of the README's ACL recipes")


def _replica(target: Any, exc: ResponseError) -> ReadOnlyReplicaError | None:
    """A write refused by a read-only replica as ReadOnlyReplicaError naming the model, or
    None.  Redis 7 refuses with READONLY (redis-py's ReadOnlyError), Redis 6.2 fails
    the script at its first write with "-READONLY ..." (every script reads before it
    writes, so nothing was written either way)."""
    text = str(exc)
    if not (isinstance(exc, ReadOnlyError) or "-READONLY " in text or text.startswith("READONLY ")):
        return None
    return ReadOnlyReplicaError(
        f"Model {_meta(target).name}: the server is a read-only replica (replica-read-only), which refuses "
        f"writes ({text.split(' script: ')[0]}); nothing was written. Write through a client of the master; "
        f"a replica serves queries, gets, counts and checks")


def _unreachable(target: Any, client: Any, exc: Exception) -> Exception:
    """A lost or timed-out connection as our error naming the model and the server
    (still a redis.ConnectionError / TimeoutError); our own errors pass as they are."""
    if isinstance(exc, (ServerUnavailableError, ServerTimeoutError)):
        return exc
    kind = ServerTimeoutError if isinstance(exc, RedisTimeoutError) else ServerUnavailableError
    return kind(f"Model {_meta(target).name}: Redis at {server_label(client)}: {exc}")


def run_sync(target: Any, make: MakeFlow[T]) -> T:
    """Run ``make(ctx)`` on the sync client of ``target`` (a model class or instance)."""
    client = SYNC_ROUTER.route_of(target)
    try:
        if eviction.unchecked(client):
            _first_use(client)
        return runner.run(client, make(Context(_meta(target), client, SYNC_ROUTER)))
    except ResponseError as exc:
        raise _denied(target, exc) or _replica(target, exc) or exc from None
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise _unreachable(target, client, exc) from exc


async def run_async(target: Any, make: MakeFlow[T]) -> T:
    """Run ``make(ctx)`` on the running event loop's client of ``target``."""
    client = ASYNC_ROUTER.route_of(target)
    try:
        if eviction.unchecked(client):
            await _afirst_use(client)
        return await runner.arun(client, make(Context(_meta(target), client, ASYNC_ROUTER)))
    except ResponseError as exc:
        raise _denied(target, exc) or _replica(target, exc) or exc from None
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise _unreachable(target, client, exc) from exc


def iterate_sync(target: Any, make: MakeFlow[Any]) -> Iterator[Any]:
    client = SYNC_ROUTER.route_of(target)
    if eviction.unchecked(client):
        _first_use(client)
    return runner.iterate(client, make(Context(_meta(target), client, SYNC_ROUTER)))


def iterate_async(target: Any, make: MakeFlow[Any]) -> AsyncIterator[Any]:
    client = ASYNC_ROUTER.route_of(target)

    async def checked() -> AsyncIterator[Any]:
        if eviction.unchecked(client):
            await _afirst_use(client)
        async for item in runner.aiterate(client, make(Context(_meta(target), client, ASYNC_ROUTER))):
            yield item

    return checked() if eviction.unchecked(client) else runner.aiterate(
        client, make(Context(_meta(target), client, ASYNC_ROUTER)))


def cached_sync(model: Any, pks: Any = None, query: Any = None) -> Any:
    """The cached instances of all ``pks``, or the cached result of ``query`` (see
    ``flows.read.page_key``), for the model's sync client; None: run the flow.

    Whatever generation the entries are of: they were stored at one found live, and the
    switch to another flushes them (its invalidation precedes every reply after it)."""
    meta = model._meta
    client = model._get_client()
    if not SYNC_ROUTER.caching(client, meta):
        return None
    return cache_registry.lookup(client, meta, None, pks, query)


def cached_async(model: Any, pks: Any = None, query: Any = None) -> Any:
    """``cached_sync`` for the running event loop's client (it does not wait: the
    cache is memory, and its tracking connection is polled without blocking)."""
    meta = model._meta
    client = model._get_async_client()
    if not ASYNC_ROUTER.caching(client, meta):
        return None
    return cache_registry.lookup(client, meta, None, pks, query)
