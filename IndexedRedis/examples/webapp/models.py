"""The IndexedRedis side: the products as stored in SQL, and the expensive report
precomputed, one object per (category, region).

Both models set ``CLIENT_CACHE = True``: a front end reads the same few hundred objects
over and over, and the refresh job's switch (a reset) drops the cached entries at once
(see "Client-side cache" in the README)."""

from __future__ import annotations

from IndexedRedis import IndexedRedisModel, IRField

__all__ = ["Product", "CategoryRegionSales"]


class Product(IndexedRedisModel):
    FIELDS = [IRField("product_id", valueType=int), "name", "category", IRField("price_cents", valueType=int)]
    INDEXED_FIELDS = ["product_id", "category"]
    KEY_NAME = "WebDemoProduct"
    CLIENT_CACHE = True  # the pages' reads are answered from this process's memory, kept coherent by Redis
    # Beside FIELDS, annotations only tell type checkers the attributes (ignored at run time).
    product_id: int
    name: str
    category: str
    price_cents: int


class CategoryRegionSales(IndexedRedisModel):
    FIELDS = ["category", "region", IRField("orders", valueType=int), IRField("units", valueType=int),
              IRField("revenue_cents", valueType=int), IRField("customers", valueType=int)]
    INDEXED_FIELDS = ["category"]
    KEY_NAME = "WebDemoCategoryRegionSales"
    CLIENT_CACHE = True
    category: str
    region: str
    orders: int
    units: int
    revenue_cents: int
    customers: int
