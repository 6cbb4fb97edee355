"""What an unchanged dataset costs: with ``fingerprint=``, nothing is read when the
fingerprint is the last run's; without one, the rows are read and written into a
staging generation that is abandoned (no switch, no cache invalidation)."""

from __future__ import annotations

import pytest
from _refresh_models import Stock, stock_rows, stock_table
from consistency import assert_no_garbage, current_generation
from sqldbs import engine_or_skip

from IndexedRedis import IndexedRedisModel, IRField
from IndexedRedis.refresh import RefreshJob, refresh_status

sa = pytest.importorskip("sqlalchemy")


class CountingSource:
    """A callable source that counts the rows it gives, and a version as fingerprint."""

    def __init__(self, rows):
        self.rows, self.read, self.version, self.fingerprints = rows, 0, 1, 0

    def __call__(self):
        for row in self.rows:
            self.read += 1
            yield row

    def fingerprint(self):
        self.fingerprints += 1
        return ("v", self.version, len(self.rows))


def test_an_unchanged_fingerprint_skips_before_reading_a_row(redis_client):
    source = CountingSource(stock_rows(300))
    job = RefreshJob(Stock, source, fingerprint=source.fingerprint, batch_size=50)
    first = job.run()
    assert (first.status, first.rows, source.read) == ("swapped", 300, 300)
    gen = current_generation(redis_client, Stock)

    second = job.run()
    assert (second.status, second.rows, source.read, source.fingerprints) == ("unchanged", 0, 300, 2)
    assert current_generation(redis_client, Stock) == gen
    status = refresh_status(Stock)
    assert status["rows_read"] == 0 and status["rows"] == 300 and status["status"] == "unchanged"
    assert job.run().status == "unchanged" and source.read == 300  # the skip keeps the next one possible

    source.version = 2  # the fingerprint moves: the rows are read again (and were the same: no switch)
    third = job.run()
    assert (third.status, third.rows, source.read) == ("unchanged", 300, 600)
    source.rows = stock_rows(300, 1)
    source.version = 3
    assert job.run().status == "swapped" and source.read == 900
    assert sorted(o.name for o in Stock.objects.all()) == sorted(r["name"] for r in stock_rows(300, 1))

    assert job.run(force=True).status == "swapped" and source.read == 1200  # force reads and swaps
    assert_no_garbage(redis_client, Stock)


def test_a_fingerprint_is_bound_to_the_live_generation(redis_client):
    source = CountingSource(stock_rows(50))
    job = RefreshJob(Stock, source, fingerprint=source.fingerprint)
    assert job.run().status == "swapped"
    Stock.reset([Stock(sku="by hand", name="x", qty=0, shelf="y")])  # someone else replaced the dataset
    assert job.run().status == "swapped" and source.read == 100  # not skipped: the fingerprint was of another one
    assert Stock.objects.count() == 50
    RefreshJob(Stock, source, name="no-fingerprint").run(force=True)  # a run without a fingerprint clears it
    assert job.run().status == "unchanged" and source.read == 200


def test_fingerprint_as_an_sql_statement(tmp_path):
    engine = engine_or_skip("sqlite", f"sqlite:///{tmp_path}/fp.db")
    metadata, table = stock_table(engine, "fp", [{**r, "updated": 1} for r in stock_rows(80)], "shelf",
                                  sa.Column("updated", sa.Integer))
    read = []
    job = RefreshJob(Stock, sa.select(table.c.sku, table.c.name, table.c.qty, table.c.shelf), engine=engine,
                     mapping=lambda row: read.append(1) or row,
                     fingerprint=sa.select(sa.func.max(table.c.updated), sa.func.count()).select_from(table))
    assert job.run().status == "swapped" and len(read) == 80
    assert job.run().status == "unchanged" and len(read) == 80
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.sku == "s3").values(qty=-3, updated=2))
    assert job.run().status == "swapped" and len(read) == 160
    assert Stock.objects.filter(sku="s3").first().qty == -3
    with pytest.raises(TypeError, match="fingerprint statement needs an SQL source"):
        RefreshJob(Stock, lambda: [], fingerprint=sa.select(sa.func.count()).select_from(table))
    with pytest.raises(TypeError, match="fingerprint= must be a callable"):
        RefreshJob(Stock, lambda: [], fingerprint=42)
    engine.dispose()


class CachedStock(IndexedRedisModel):
    FIELDS = [IRField("sku", valueType=str), "name", IRField("qty", valueType=int), "shelf"]
    INDEXED_FIELDS = ["sku", "shelf"]
    KEY_NAME = "IrTestCachedStock"
    CLIENT_CACHE = True


def test_an_unchanged_digest_abandons_staging_without_touching_cached_readers(redis_client):
    rows = stock_rows(200)
    job = RefreshJob(CachedStock, lambda: iter(rows), batch_size=40)
    assert job.run().status == "swapped"
    gen = current_generation(redis_client, CachedStock)
    CachedStock.objects.filter(shelf="sh1").all()
    CachedStock.objects.filter(shelf="sh1").all()
    before = CachedStock.objects.cacheStats()
    assert before["hits"] >= 1
    result = job.run()
    assert (result.status, result.rows) == ("unchanged", 200)  # read and written to staging, then dropped
    assert current_generation(redis_client, CachedStock) == gen
    CachedStock.objects.filter(shelf="sh1").all()
    after = CachedStock.objects.cacheStats()
    assert after["flushes"] == before["flushes"] and after["invalidations"] == before["invalidations"]
    assert after["hits"] == before["hits"] + 1  # the cached query survived
    assert_no_garbage(redis_client, CachedStock)

    changed = stock_rows(200, 1)
    assert RefreshJob(CachedStock, lambda: iter(changed)).run().status == "swapped"
    assert sorted(o.name for o in CachedStock.objects.filter(shelf="sh1").all()) == \
        sorted(r["name"] for r in changed if r["shelf"] == "sh1")  # the switch flushed the cache
