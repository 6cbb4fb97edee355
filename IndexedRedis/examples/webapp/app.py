"""The Starlette app: every page twice, ``/sql/...`` (SQLAlchemy, a query per request)
and ``/redis/...`` (IndexedRedis' async API on data a refresh job put there).

Both sides share everything but the data access: the routes, the HTML (``pages``,
plain string building from rows with attributes), and the server.  The SQL side is
plain SQLAlchemy 2 Core: statements built once with bound parameters, a connection
pool, one query per request, no caching of its own.  On a sync ``Engine`` the query
runs in Starlette's thread pool (``run_in_threadpool``), as FastAPI runs a ``def``
handler and as any blocking database code must run under an event loop; on an
``AsyncEngine`` (asyncmy, asyncpg, psycopg's async mode) it is awaited.  The Redis side
reads the models with ``CLIENT_CACHE = True`` (see ``models``): most requests are
answered from this process's memory, kept coherent by Redis's invalidations.

Why Starlette and not FastAPI: the pages use nothing FastAPI adds (dependency
injection, validation of a JSON body, OpenAPI), and FastAPI wraps each request in
middleware of its own (telemetry, a body size limit, an exit stack) and in its
parameter machinery: a constant page cost the worker 107 µs of CPU per request through a
FastAPI route, 37 µs through a ``Route`` of a ``Starlette()`` app and 33 µs through the
same ``Route`` in a bare Starlette ``Router`` (``bench.webapp_floor``, 2026-12-03, the
README's "The example web app").  Both back ends pay the framework alike, so what it
costs per request hides the difference in data access that the demo is there to show.
The app is therefore a ``Router``: the routes and the lifespan, without the middleware
stack that ``Starlette()`` wraps around them (its error middleware renders a 500 page and
its exception middleware turns ``HTTPException`` into responses; none of these pages
raises one, and uvicorn answers 500 and logs the traceback for an error a handler does
not catch).  Each handler takes the ``Request`` and returns a ``Response``; a path that
no route matches, and an id that is not a number (the ``:int`` converters), get the
router's plain 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, Select, create_engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route, Router

from ...connection import acloseRedisConnections
from . import pages
from .models import CategoryRegionSales, Product
from .queries import category_statement, product_statement, report_query
from .schema import CATEGORIES, Shop

__all__ = ["create_app", "make_engine", "make_async_engine"]

_REPORT_SUMS = ("orders", "units", "revenue_cents", "customers")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False}, pool_size=16)
    return create_engine(url, pool_size=16, max_overflow=16)


def make_async_engine(url: str) -> Any:
    """An ``AsyncEngine`` with the same pool (``url`` names an async driver:
    ``mysql+asyncmy://``, ``postgresql+psycopg://``, ``postgresql+asyncpg://``)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(url, pool_size=16, max_overflow=16)


def _report_row(row: Any) -> SimpleNamespace:
    """SUMs come back as Decimal from some databases: the page shows ints."""
    values = dict(row._mapping)
    for name in _REPORT_SUMS:
        values[name] = int(values[name])
    return SimpleNamespace(**values)


SqlRunner = Callable[[Select[Any], dict[str, Any], Callable[[Any], Any]], Any]


def _sql_runner(engine: Any) -> SqlRunner:
    """``await run(statement, params, take)``: one query on a pooled connection, and
    ``take(result)`` (``.all()``, ``.first()``) while the connection is held."""
    if isinstance(engine, Engine):
        def query(statement: Select[Any], params: dict[str, Any], take: Callable[[Any], Any]) -> Any:
            with engine.connect() as conn:
                return take(conn.execute(statement, params))

        async def run_sync(statement: Select[Any], params: dict[str, Any], take: Callable[[Any], Any]) -> Any:
            return await run_in_threadpool(query, statement, params, take)

        return run_sync

    async def run_async(statement: Select[Any], params: dict[str, Any], take: Callable[[Any], Any]) -> Any:
        async with engine.connect() as conn:
            return take(await conn.execute(statement, params))

    return run_async


def _html(title: str, body: str, source: str) -> HTMLResponse:
    return HTMLResponse(pages.page(title, body, source))


def create_app(engine: Any, shop: Shop | None = None) -> Router:
    """``engine``: a sync ``Engine`` (queries in the thread pool) or an ``AsyncEngine``."""
    shop = shop or Shop.define()
    by_category, by_id, report = category_statement(shop), product_statement(shop), report_query(shop)
    index_html = pages.page("IndexedRedis web demo", pages.index_page(CATEGORIES), "both back ends")
    sql = _sql_runner(engine)

    def all_rows(result: Any) -> Any:
        return result.all()

    def first_row(result: Any) -> Any:
        return result.first()

    def report_rows(result: Any) -> list[SimpleNamespace]:
        return [_report_row(row) for row in result]

    async def index(_request: Request) -> HTMLResponse:
        return HTMLResponse(index_html)

    # ---- from SQL, a query per request ------------------------------------------------

    async def sql_category(request: Request) -> HTMLResponse:
        category: str = request.path_params["category"]
        rows = await sql(by_category, {"category": category}, all_rows)
        return _html(f"Category {category}", pages.category_page(category, rows), "SQL")

    async def sql_product(request: Request) -> HTMLResponse:
        product_id: int = request.path_params["product_id"]
        found = await sql(by_id, {"product_id": product_id}, first_row)
        return _html(f"Product {product_id}", pages.product_page(found), "SQL")

    async def sql_report(_request: Request) -> HTMLResponse:
        rows = await sql(report, {}, report_rows)
        return _html("Sales by category and region", pages.report_page(rows), "SQL")

    # ---- from IndexedRedis (async; answered from the client-side cache when it can) ------

    async def redis_category(request: Request) -> HTMLResponse:
        category: str = request.path_params["category"]
        found = await Product.objects.filter(category=category).orderBy("product_id").aall()
        return _html(f"Category {category}", pages.category_page(category, found), "IndexedRedis")

    async def redis_product(request: Request) -> HTMLResponse:
        product_id: int = request.path_params["product_id"]
        found = await Product.objects.filter(product_id=product_id).afirst()
        return _html(f"Product {product_id}", pages.product_page(found), "IndexedRedis")

    async def redis_report(_request: Request) -> HTMLResponse:
        rows = sorted(await CategoryRegionSales.objects.aall(), key=lambda r: (r.category, r.region))
        return _html("Sales by category and region", pages.report_page(rows), "IndexedRedis")

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        await acloseRedisConnections()
        if not isinstance(engine, Engine):
            await engine.dispose()

    routes = [Route("/", index),
              Route("/sql/category/{category}", sql_category), Route("/sql/product/{product_id:int}", sql_product),
              Route("/sql/report", sql_report),
              Route("/redis/category/{category}", redis_category),
              Route("/redis/product/{product_id:int}", redis_product), Route("/redis/report", redis_report)]
    return Router(routes=routes, lifespan=lifespan)
