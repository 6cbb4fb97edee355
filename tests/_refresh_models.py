"""Models and jobs the refresh tests import (also from child processes)."""

from __future__ import annotations

import os
import time

from IndexedRedis import IndexedRedisModel, IRField
from IndexedRedis.refresh import RefreshJob


class Stock(IndexedRedisModel):
    FIELDS = [IRField("sku", valueType=str), "name", IRField("qty", valueType=int), "shelf"]
    INDEXED_FIELDS = ["sku", "shelf"]
    KEY_NAME = "IrTestStock"


def stock_rows(n: int, version: int = 0) -> list[dict]:
    return [{"sku": f"s{i}", "name": f"item {i} v{version}", "qty": i * 3 + version, "shelf": f"sh{i % 7}"}
            for i in range(n)]


def slow_rows():
    for row in stock_rows(40):
        time.sleep(0.02)
        yield row


#: A job whose run takes about a second (for the two-process lease test).
slow_job = RefreshJob(Stock, slow_rows, name="slow-stock", batch_size=10, retries=0)


def run_slow_job(url: str, start_at: float, results) -> None:
    os.environ["REDIS_URL"] = url
    while time.time() < start_at:
        time.sleep(0.001)
    results.put(slow_job.run().status)


#: A quick job for the command-line tests.
quick_jobs = [RefreshJob(Stock, lambda: iter(stock_rows(25)), name="quick-stock")]
