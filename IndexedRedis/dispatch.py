"""Running a flow for a model class or instance, on the sync or the asyncio driver:
the one place where the API's twins (``count`` / ``acount``...) part ways."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from .connection import ASYNC_ROUTER, SYNC_ROUTER
from .drivers import runner
from .flows.context import Context
from .flows.requests import Flow
from .options import checked_meta

__all__ = ["run_sync", "run_async", "iterate_sync", "iterate_async"]

T = TypeVar("T")
MakeFlow = Callable[[Context], Flow[T]]


def _meta(target: Any) -> Any:
    model: Any = target if isinstance(target, type) else type(target)
    meta = model._meta
    if meta is None:  # abstract, or broken with its error deferred (the 6.x switch)
        return checked_meta(model)
    return meta


def run_sync(target: Any, make: MakeFlow[T]) -> T:
    """Run ``make(ctx)`` on the sync client of ``target`` (a model class or instance)."""
    client = SYNC_ROUTER.route_of(target)
    return runner.run(client, make(Context(_meta(target), client, SYNC_ROUTER)))


async def run_async(target: Any, make: MakeFlow[T]) -> T:
    """Run ``make(ctx)`` on the running event loop's client of ``target``."""
    client = ASYNC_ROUTER.route_of(target)
    return await runner.arun(client, make(Context(_meta(target), client, ASYNC_ROUTER)))


def iterate_sync(target: Any, make: MakeFlow[Any]) -> Iterator[Any]:
    client = SYNC_ROUTER.route_of(target)
    return runner.iterate(client, make(Context(_meta(target), client, SYNC_ROUTER)))


def iterate_async(target: Any, make: MakeFlow[Any]) -> AsyncIterator[Any]:
    client = ASYNC_ROUTER.route_of(target)
    return runner.aiterate(client, make(Context(_meta(target), client, ASYNC_ROUTER)))
