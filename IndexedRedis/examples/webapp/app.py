"""The FastAPI app: every page twice, ``/sql/...`` (SQLAlchemy, a query per request)
and ``/redis/...`` (IndexedRedis' async API on data a refresh job put there).

Both sides share everything but the data access: the routes, the HTML (``pages``,
plain string building from rows with attributes), and the server.  The SQL side is
plain SQLAlchemy 2 Core: statements built once with bound parameters, a connection
pool, one query per request, no caching of its own; its handlers are sync, so FastAPI
runs them in its thread pool, as it would any blocking database code.  The Redis side
reads the models with ``CLIENT_CACHE = True`` (see ``models``): most requests are
answered from this process's memory, kept coherent by Redis's invalidations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine, create_engine

from ...connection import acloseRedisConnections
from . import pages
from .models import CategoryRegionSales, Product
from .queries import category_statement, product_statement, report_query
from .schema import CATEGORIES, Shop

__all__ = ["create_app", "make_engine"]

_REPORT_SUMS = ("orders", "units", "revenue_cents", "customers")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False}, pool_size=16)
    return create_engine(url, pool_size=16, max_overflow=16)


def _report_row(row: Any) -> SimpleNamespace:
    """SUMs come back as Decimal from some databases: the page shows ints."""
    values = dict(row._mapping)
    for name in _REPORT_SUMS:
        values[name] = int(values[name])
    return SimpleNamespace(**values)


def create_app(engine: Engine, shop: Shop | None = None) -> FastAPI:
    shop = shop or Shop.define()
    by_category, by_id, report = category_statement(shop), product_statement(shop), report_query(shop)
    index_html = pages.page("IndexedRedis web demo", pages.index_page(CATEGORIES), "both back ends")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await acloseRedisConnections()

    app = FastAPI(title="IndexedRedis web demo", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_html)

    # ---- from SQL, per request (sync handlers: FastAPI runs them in its thread pool) ----

    @app.get("/sql/category/{category}", response_class=HTMLResponse)
    def sql_category(category: str) -> HTMLResponse:
        with engine.connect() as conn:
            rows = conn.execute(by_category, {"category": category}).all()
        return HTMLResponse(pages.page(f"Category {category}", pages.category_page(category, rows), "SQL"))

    @app.get("/sql/product/{product_id}", response_class=HTMLResponse)
    def sql_product(product_id: int) -> HTMLResponse:
        with engine.connect() as conn:
            found = conn.execute(by_id, {"product_id": product_id}).first()
        return HTMLResponse(pages.page(f"Product {product_id}", pages.product_page(found), "SQL"))

    @app.get("/sql/report", response_class=HTMLResponse)
    def sql_report() -> HTMLResponse:
        with engine.connect() as conn:
            rows = [_report_row(row) for row in conn.execute(report)]
        return HTMLResponse(pages.page("Sales by category and region", pages.report_page(rows), "SQL"))

    # ---- from IndexedRedis (async; answered from the client-side cache when it can) ------

    @app.get("/redis/category/{category}", response_class=HTMLResponse)
    async def redis_category(category: str) -> HTMLResponse:
        found = await Product.objects.filter(category=category).orderBy("product_id").aall()
        return HTMLResponse(pages.page(f"Category {category}", pages.category_page(category, found), "IndexedRedis"))

    @app.get("/redis/product/{product_id}", response_class=HTMLResponse)
    async def redis_product(product_id: int) -> HTMLResponse:
        found = await Product.objects.filter(product_id=product_id).afirst()
        return HTMLResponse(pages.page(f"Product {product_id}", pages.product_page(found), "IndexedRedis"))

    @app.get("/redis/report", response_class=HTMLResponse)
    async def redis_report() -> HTMLResponse:
        rows = sorted(await CategoryRegionSales.objects.aall(), key=lambda r: (r.category, r.region))
        return HTMLResponse(pages.page("Sales by category and region", pages.report_page(rows), "IndexedRedis"))

    return app
