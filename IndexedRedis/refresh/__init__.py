"""Refresh jobs: keep a model's dataset in step with SQL (or any source), atomically.

    from sqlalchemy import select
    from IndexedRedis.refresh import RefreshJob

    products = RefreshJob(Product, select(products_table), engine="postgresql+psycopg://...")
    products.run()                  # or: indexedredis refresh myapp.jobs:products --every 60

See "A fast front end for SQL" in the README.
"""

from __future__ import annotations

from .job import LeaseLostError, RefreshError, RefreshJob, RefreshResult
from .sources import CallableSource, Source, SQLSource
from .status import format_status, refresh_status

__all__ = ["RefreshJob", "RefreshResult", "RefreshError", "LeaseLostError", "Source", "SQLSource",
           "CallableSource", "refresh_status", "format_status"]
