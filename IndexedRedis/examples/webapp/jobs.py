"""The refresh jobs that feed the Redis side from SQL."""

from __future__ import annotations

from typing import Any

from ...refresh import RefreshJob
from .models import CategoryRegionSales, Product
from .queries import products_query, report_query
from .schema import Shop

__all__ = ["make_jobs"]


def make_jobs(engine: Any, shop: Shop) -> list[RefreshJob]:
    """Products copied as they are; the report computed once per run instead of once
    per page view (sums come back as Decimal from some databases: the int fields convert)."""
    to_ints = {"orders", "units", "revenue_cents", "customers"}
    return [RefreshJob(Product, products_query(shop), engine=engine, name="webdemo-products"),
            RefreshJob(CategoryRegionSales, report_query(shop), engine=engine, name="webdemo-report",
                       mapping=lambda row: {k: int(v) if k in to_ints else v for k, v in row.items()})]
