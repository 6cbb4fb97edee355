"""``RefreshJob.arun``: the same plan as ``run`` on the event loop's async client, the
source read in a worker thread; on SQLite and PostgreSQL (real servers), and with a
source that fails part way."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from _refresh_models import Stock, stock_rows, stock_table
from consistency import assert_indexes_consistent, assert_no_garbage, current_generation
from sqldbs import PG_URL, engine_or_skip

from IndexedRedis.refresh import RefreshError, RefreshJob, refresh_status

sa = pytest.importorskip("sqlalchemy")


def _content():
    return sorted((o.sku, o.name, o.qty, o.shelf) for o in Stock.objects.all())


def _expected(rows):
    return sorted((r["sku"], r["name"], r["qty"], r["shelf"]) for r in rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def stock_engine(request, tmp_path):
    url = {"sqlite": f"sqlite:///{tmp_path}/stock.db", "postgresql": PG_URL}[request.param]
    engine = engine_or_skip(request.param, url)
    metadata, table = stock_table(engine, "astock", stock_rows(1300))
    try:
        yield engine, table
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_arun_swaps_skips_unchanged_and_follows_changes(stock_engine, redis_client):
    engine, table = stock_engine
    threads: set[str] = set()

    def mapping(row):
        threads.add(threading.current_thread().name)
        return row

    job = RefreshJob(Stock, sa.select(table.c.sku, table.c.name, table.c.qty, table.c.shelf), engine=engine,
                     mapping=mapping, batch_size=100, yield_per=128)
    Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])

    async def main():
        loop_thread = threading.current_thread().name
        ticks = []

        async def ticker():  # the loop keeps running while the job reads SQL
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        tick_task = asyncio.create_task(ticker())
        first = await job.arun()
        again = await job.arun()
        tick_task.cancel()
        return loop_thread, first, again, ticks

    loop_thread, first, again, ticks = asyncio.run(main())
    assert (first.status, first.rows, first.changed) == ("swapped", 1300, 1300)
    assert (again.status, again.rows, again.changed) == ("unchanged", 1300, 0)
    assert loop_thread not in threads and len(threads) == 1  # the rows were read in one worker thread
    assert len(ticks) > 2
    assert _content() == _expected(stock_rows(1300))
    assert_indexes_consistent(redis_client, Stock)
    assert_no_garbage(redis_client, Stock)
    gen = current_generation(redis_client, Stock)

    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.sku == "s7").values(qty=-7))
    third = asyncio.run(job.arun())
    assert third.status == "swapped" and current_generation(redis_client, Stock) != gen
    assert Stock.objects.filter(sku="s7").first().qty == -7
    status = refresh_status(Stock)
    assert status["runs"] == 3 and status["status"] == "swapped" and status["lease_holder"] is None


def test_arun_and_run_leave_the_same_data_and_metrics():
    rows = stock_rows(420, 3)
    sync_result = RefreshJob(Stock, lambda: iter(rows), batch_size=64).run()
    sync_content = _content()
    Stock.reset([])
    async_result = asyncio.run(RefreshJob(Stock, lambda: iter(rows), batch_size=64).arun())
    assert (sync_result.status, sync_result.rows) == (async_result.status, async_result.rows) == ("swapped", 420)
    assert _content() == sync_content == _expected(rows)


def test_arun_source_failing_part_way_leaves_the_dataset_and_retries(redis_client):
    Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])
    gen = current_generation(redis_client, Stock)
    calls = []

    def rows():
        calls.append(1)
        for i, row in enumerate(stock_rows(500)):
            if i == 333 and len(calls) == 1:
                raise OSError("the database went away")
            yield row

    failing = RefreshJob(Stock, rows, batch_size=50, retries=0)
    with pytest.raises(RefreshError, match="OSError: the database went away"):
        asyncio.run(failing.arun())
    assert current_generation(redis_client, Stock) == gen
    assert [o.sku for o in Stock.objects.all()] == ["old"]
    assert_no_garbage(redis_client, Stock)
    assert "went away" in refresh_status(Stock)["last_error"]

    calls.clear()
    retried = RefreshJob(Stock, rows, batch_size=50, retries=2, backoff=0.05)
    result = asyncio.run(retried.arun())
    assert result.status == "swapped" and result.attempts == 2
    assert _content() == _expected(stock_rows(500))
    assert_no_garbage(redis_client, Stock)


def test_arun_busy_and_incremental():
    from IndexedRedis.dispatch import run_sync
    from IndexedRedis.flows.refresh import lease_flow

    asyncio.run(RefreshJob(Stock, lambda: iter(stock_rows(30))).arun())
    assert run_sync(Stock, lambda ctx: lease_flow(ctx, "acquire", "someone-else", 5000)).held
    assert asyncio.run(RefreshJob(Stock, lambda: iter(stock_rows(3))).arun()).status == "busy"
    run_sync(Stock, lambda ctx: lease_flow(ctx, "release", "someone-else"))

    changed = stock_rows(30, 1)[:25]
    result = asyncio.run(RefreshJob(Stock, lambda: iter(changed), natural_key="sku").arun())
    assert (result.status, result.rows, result.changed) == ("updated", 25, 30)  # 25 changed, 5 removed
    assert _content() == _expected(changed)


def test_a_cancelled_arun_releases_the_lease_and_leaves_the_dataset(redis_client):
    Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])
    gen = current_generation(redis_client, Stock)

    def slow_rows():
        for row in stock_rows(400):
            time.sleep(0.002)
            yield row

    job = RefreshJob(Stock, slow_rows, batch_size=20)

    async def main():
        task = asyncio.create_task(job.arun())
        await asyncio.sleep(0.3)  # part way: batches in the new generation, the next one being read
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    waited = asyncio.run(main())
    assert waited < 1.0  # the loop did not wait for the source
    assert redis_client.get(Stock._meta.keys.refresh_lease) is None
    assert current_generation(redis_client, Stock) == gen
    assert [o.sku for o in Stock.objects.all()] == ["old"]
    time.sleep(0.1)
    assert_no_garbage(redis_client, Stock)  # the new generation was abandoned and freed
