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


def run_paused_before_switch(url: str, results) -> None:
    """Runner A of the lease/switch race: a 1 s lease; once every batch is written and
    the lease renewed, just before its switch, it stops itself (SIGSTOP) until the test
    resumes it.  Puts ("stopped", pid), then ("result", status, holder, log text)."""
    import io
    import logging
    import signal

    from IndexedRedis.refresh import job as job_module

    os.environ["REDIS_URL"] = url
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    logging.getLogger("IndexedRedis.refresh").addHandler(handler)
    logging.getLogger("IndexedRedis.refresh").setLevel(logging.INFO)
    real = job_module.stored_digest_flow

    def paused(ctx):
        results.put(("stopped", os.getpid()))
        os.kill(os.getpid(), signal.SIGSTOP)
        return (yield from real(ctx))

    job_module.stored_digest_flow = paused
    result = RefreshJob(Stock, lambda: iter(stock_rows(60, 1)), name="runner-a", lease_seconds=1.0,
                        batch_size=20, retries=0).run()
    results.put(("result", result.status, result.holder, text.getvalue()))


def run_takeover(url: str, results) -> None:
    """Runner B: a plain run of another dataset."""
    os.environ["REDIS_URL"] = url
    result = RefreshJob(Stock, lambda: iter(stock_rows(40, 2)), name="runner-b").run()
    results.put(("result", result.status))


def stock_table(engine, stem: str, rows: list[dict], shelf_column: str = "shelf", *extra_columns):
    """A new SQL table of stock rows (its ``shelf`` column named ``shelf_column``) on
    ``engine``, filled with ``rows``: (metadata, table); drop it with metadata.drop_all."""
    import sqlalchemy as sa
    from sqldbs import table_name

    metadata = sa.MetaData()
    table = sa.Table(table_name(stem), metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("sku", sa.String(20)), sa.Column("name", sa.String(60)),
                     sa.Column("qty", sa.Integer), sa.Column(shelf_column, sa.String(10)), *extra_columns)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{**{k: v for k, v in r.items() if k != "shelf"}, shelf_column: r["shelf"]}
                                      for r in rows])
    return metadata, table
