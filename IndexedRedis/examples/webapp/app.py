"""The FastAPI app: every page twice, ``/sql/...`` (SQLAlchemy, a query per request)
and ``/redis/...`` (IndexedRedis' async API on data a refresh job put there)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine, create_engine

from ...connection import acloseRedisConnections
from . import pages
from .models import CategoryRegionSales, Product
from .queries import category_query, product_query, report_query
from .schema import CATEGORIES, Shop

__all__ = ["create_app", "make_engine"]

_PRODUCT_FIELDS = ("product_id", "name", "category", "price_cents")
_REPORT_FIELDS = ("category", "region", "orders", "units", "revenue_cents", "customers")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False}, pool_size=16)
    return create_engine(url, pool_size=16, max_overflow=16)


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in names}


def create_app(engine: Engine, shop: Shop | None = None) -> FastAPI:
    shop = shop or Shop.define()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await acloseRedisConnections()

    app = FastAPI(title="IndexedRedis web demo", lifespan=lifespan)

    def sql_rows(statement: Any) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return [{k: int(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, float) else v
                     for k, v in row._mapping.items()} for row in conn.execute(statement)]

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return pages.page("IndexedRedis web demo", pages.index_page(CATEGORIES), "both back ends")

    # ---- from SQL, per request (sync handlers: FastAPI runs them in its thread pool) ----

    @app.get("/sql/category/{category}", response_class=HTMLResponse)
    def sql_category(category: str) -> str:
        return pages.page(f"Category {category}",
                          pages.category_page(category, sql_rows(category_query(shop, category))), "SQL")

    @app.get("/sql/product/{product_id}", response_class=HTMLResponse)
    def sql_product(product_id: int) -> str:
        found = sql_rows(product_query(shop, product_id))
        return pages.page(f"Product {product_id}", pages.product_page(found[0] if found else None), "SQL")

    @app.get("/sql/report", response_class=HTMLResponse)
    def sql_report() -> str:
        return pages.page("Sales by category and region", pages.report_page(sql_rows(report_query(shop))), "SQL")

    # ---- from IndexedRedis (async) -------------------------------------------------------

    @app.get("/redis/category/{category}", response_class=HTMLResponse)
    async def redis_category(category: str) -> str:
        found = sorted(await Product.objects.filter(category=category).aall(), key=lambda p: p.product_id)
        return pages.page(f"Category {category}",
                          pages.category_page(category, [_fields(p, _PRODUCT_FIELDS) for p in found]), "IndexedRedis")

    @app.get("/redis/product/{product_id}", response_class=HTMLResponse)
    async def redis_product(product_id: int) -> str:
        found = await Product.objects.filter(product_id=product_id).afirst()
        body = pages.product_page(None if found is None else _fields(found, _PRODUCT_FIELDS))
        return pages.page(f"Product {product_id}", body, "IndexedRedis")

    @app.get("/redis/report", response_class=HTMLResponse)
    async def redis_report() -> str:
        rows = sorted((_fields(r, _REPORT_FIELDS) for r in await CategoryRegionSales.objects.aall()),
                      key=lambda r: (r["category"], r["region"]))
        return pages.page("Sales by category and region", pages.report_page(rows), "IndexedRedis")

    return app
