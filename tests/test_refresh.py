"""Refresh jobs against real databases (SQLite, PostgreSQL, MariaDB) and a real Redis:
the dataset swapped in, skipped when unchanged, untouched by failures, one runner at a
time across processes, incremental mode equal to a full reset."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time

import pytest
from _refresh_models import Stock, run_slow_job, stock_rows
from _refresh_models import stock_table as make_stock_table
from consistency import assert_indexes_consistent, assert_no_garbage, current_generation
from sqldbs import engine_or_skip, sql_engine, table_name  # noqa: F401  (fixture)

from IndexedRedis.refresh import RefreshError, RefreshJob, refresh_status

sa = pytest.importorskip("sqlalchemy")


def _content():
    return sorted((o.sku, o.name, o.qty, o.shelf) for o in Stock.objects.all())


def _expected(rows):
    return sorted((r["sku"], r["name"], r["qty"], r["shelf"]) for r in rows)


@pytest.fixture
def stock_table(sql_engine):  # noqa: F811
    metadata, table = make_stock_table(sql_engine, "stock", stock_rows(700), "shelf_code")
    try:
        yield sql_engine, table
    finally:
        metadata.drop_all(sql_engine)


def _job(engine, table, **options):
    query = sa.select(table.c.sku, table.c.name, table.c.qty, table.c.shelf_code.label("shelf"))
    return RefreshJob(Stock, query, engine=engine, batch_size=100, yield_per=150, backoff=0.05, **options)


def test_sql_job_swaps_in_skips_unchanged_and_records_metrics(stock_table, redis_client):
    engine, table = stock_table
    Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])
    job = _job(engine, table)
    first = job.run()
    assert (first.status, first.rows, first.changed) == ("swapped", 700, 700)
    assert _content() == _expected(stock_rows(700))
    assert Stock.objects.filter(shelf="sh3").count() == 100
    assert_indexes_consistent(redis_client, Stock)
    assert_no_garbage(redis_client, Stock)
    gen = current_generation(redis_client, Stock)

    again = job.run()
    assert (again.status, again.rows, again.changed) == ("unchanged", 700, 0)
    assert current_generation(redis_client, Stock) == gen  # nothing switched
    assert_no_garbage(redis_client, Stock)

    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.sku == "s5").values(qty=-1))
    third = job.run()
    assert third.status == "swapped"
    assert Stock.objects.filter(sku="s5").first().qty == -1
    status = refresh_status(Stock)
    assert status["rows"] == 700 and status["runs"] == 3 and status["status"] == "swapped"
    assert status["last_success"] > time.time() - 60 and status["duration"] >= 0
    assert status["lease_holder"] is None


def test_orm_select_and_mapping(tmp_path, redis_client):
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "items"
        id = mapped_column(sa.Integer, primary_key=True)
        sku = mapped_column(sa.String)
        label = mapped_column(sa.String)
        qty = mapped_column(sa.Integer)
        shelf = mapped_column(sa.String)

    engine = sa.create_engine(f"sqlite:///{tmp_path}/orm.db")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(Item(sku=r["sku"], label=r["name"], qty=r["qty"], shelf=r["shelf"]) for r in stock_rows(50))
        session.commit()
    job = RefreshJob(Stock, sa.select(Item).where(Item.qty >= 30), engine=engine,
                     mapping=lambda row: {"sku": row["sku"], "name": row.get("name", "?"), "qty": row["qty"],
                                          "shelf": row["shelf"]})
    assert job.run().rows == 40
    assert Stock.objects.filter(sku="s49").first().qty == 147
    core = RefreshJob(Stock, sa.select(Item.__table__), engine=engine,
                      mapping={"sku": "sku", "name": "label", "qty": "qty", "shelf": "shelf"})
    assert core.run().rows == 50 and _content() == _expected(stock_rows(50))
    engine.dispose()


def test_a_missing_column_is_a_clear_error_and_writes_nothing(stock_table):
    engine, table = stock_table
    Stock.reset([Stock(sku="keep", name="k", qty=1, shelf="x")])
    job = RefreshJob(Stock, sa.select(table.c.id), engine=engine, retries=0)
    with pytest.raises(RefreshError, match=r"refresh job Stock: .*lack"):
        job.run()
    assert [o.sku for o in Stock.objects.all()] == ["keep"]
    assert "lack" in refresh_status(Stock)["last_error"]


def test_callable_sources_of_dicts_and_objects():
    assert RefreshJob(Stock, lambda: iter(stock_rows(30))).run().rows == 30
    assert RefreshJob(Stock, lambda: [Stock(**r) for r in stock_rows(12, 1)]).run().status == "swapped"
    assert _content() == _expected(stock_rows(12, 1))
    with pytest.raises(TypeError, match="an SQLAlchemy select"):
        RefreshJob(Stock, 42)
    with pytest.raises(ValueError, match="natural_key"):
        RefreshJob(Stock, list, natural_key="nope")


def test_pg_backend_killed_mid_stream_leaves_the_dataset_untouched_then_retries(redis_client, caplog):
    pytest.importorskip("psycopg")
    from sqldbs import PG_URL

    app_name = table_name("app")  # marks the job's connections, and only them
    engine = engine_or_skip("postgresql", PG_URL, connect_args={"application_name": app_name})
    metadata = sa.MetaData()
    table = sa.Table(table_name("kill"), metadata, sa.Column("sku", sa.String(20)), sa.Column("name", sa.String(60)),
                     sa.Column("qty", sa.Integer), sa.Column("shelf", sa.String(10)))
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), stock_rows(3000))
        Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])
        gen = current_generation(redis_client, Stock)
        killed = []

        def kill_once(row):
            if len(killed) < 1 and row["qty"] == 3 * 1200:  # part way: batches already in the new generation
                with engine.connect() as other:
                    pids = other.execute(sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = :a AND pid <> pg_backend_pid()"),
                        {"a": app_name}).scalars().all()
                    for pid in pids:
                        other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                killed.append(pids)
            return row

        job = RefreshJob(Stock, sa.select(table), engine=engine, mapping=kill_once, batch_size=200, yield_per=100,
                         retries=0)
        with pytest.raises(RefreshError, match="failed 1 time"):
            job.run()
        assert killed and killed[0], "the streaming backend was not found"
        assert current_generation(redis_client, Stock) == gen
        assert [o.sku for o in Stock.objects.all()] == ["old"]
        assert_no_garbage(redis_client, Stock)
        assert "OperationalError" in refresh_status(Stock)["last_error"]

        killed.clear()
        job.retries = 2
        with caplog.at_level(logging.WARNING, logger="IndexedRedis.refresh"):
            result = job.run()
        assert result.status == "swapped" and result.attempts == 2 and result.rows == 3000
        assert "retrying" in caplog.text and "untouched" in caplog.text
        assert _content() == _expected(stock_rows(3000))
        assert_no_garbage(redis_client, Stock)
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_redis_lost_mid_stream_leaves_the_dataset_untouched_then_retries(monkeypatch):
    """Redis drops the job's connections and refuses new ones for a second, part way
    through a run: that attempt fails, the live dataset stays as it was, a later
    attempt succeeds.  (A private server: its password is changed.)"""
    import redis

    from IndexedRedis.connection import clearRedisPools
    from IndexedRedis.embedded import EmbeddedRedis, free_port

    server = EmbeddedRedis(port=free_port(), unix_socket=False)
    server.start()
    try:
        monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{server.port}/0")
        clearRedisPools()
        Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])
        admin = redis.Redis(host="127.0.0.1", port=server.port)
        seen: dict = {}

        def outage() -> None:
            time.sleep(3.5)  # longer than redis-py's own reconnect retries
            seen["gen"] = int(admin.get(Stock._meta.keys.gen))
            seen["count"] = admin.zcard(Stock._meta.keys.generation(seen["gen"]).ids)
            admin.config_set("requirepass", "")

        def rows():
            for i, row in enumerate(stock_rows(1000)):
                if i == 450 and "gen_before" not in seen:
                    seen["gen_before"] = int(admin.get(Stock._meta.keys.gen))
                    admin.config_set("requirepass", "sesame")
                    admin.client_kill_filter(_type="normal", skipme=True)
                    threading.Thread(target=outage).start()
                yield row

        job = RefreshJob(Stock, rows, batch_size=100, retries=6, backoff=0.5)
        result = job.run()  # the driver's reconnects may bridge the outage, or the job's retries do
        assert result.status == "swapped"
        assert seen["gen"] == seen["gen_before"] and seen["count"] == 1  # untouched during the outage
        assert _content() == _expected(stock_rows(1000))

        # Redis refusing the writes (out of memory) part way: the attempt fails, the job retries
        Stock.reset([Stock(sku="old", name="old", qty=1, shelf="x")])
        seen.clear()

        def recover() -> None:
            time.sleep(0.6)
            seen["during"] = sorted(admin.hvals(Stock._meta.keys.generation(int(admin.get(Stock._meta.keys.gen))).objs))
            admin.config_set("maxmemory", 0)

        def full_rows():
            for i, row in enumerate(stock_rows(1000)):
                if i == 450 and "started" not in seen:
                    seen["started"] = True
                    admin.config_set("maxmemory-policy", "noeviction")
                    admin.config_set("maxmemory", 1)
                    threading.Thread(target=recover).start()
                yield row

        result = RefreshJob(Stock, full_rows, batch_size=100, retries=5, backoff=0.3).run()
        assert result.attempts >= 2 and result.status == "swapped"
        assert len(seen["during"]) == 1  # the old dataset, untouched while writes failed
        assert _content() == _expected(stock_rows(1000))
    finally:
        clearRedisPools()
        server.stop()


def test_two_runners_in_two_processes_one_runs(redis_url, redis_client):
    Stock.reset([])
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start_at = time.time() + 2.5  # both children imported and waiting by then
    children = [ctx.Process(target=run_slow_job, args=(redis_url, start_at, results)) for _ in range(2)]
    for child in children:
        child.start()
    statuses = sorted(results.get(timeout=60) for _ in children)
    for child in children:
        child.join(30)
    assert statuses == ["busy", "swapped"]
    assert Stock.objects.count() == 40
    assert redis_client.get(Stock._meta.keys.refresh_lease) is None


def test_a_second_runner_waits_for_the_lease(caplog):
    slow = RefreshJob(Stock, lambda: (time.sleep(0.01) or r for r in stock_rows(40)), batch_size=5)
    waiting = RefreshJob(Stock, lambda: iter(stock_rows(10, 2)), wait_for_lease=10)
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault("slow", slow.run()))
    thread.start()
    time.sleep(0.1)
    with caplog.at_level(logging.INFO, logger="IndexedRedis.refresh"):
        second = waiting.run()
    thread.join()
    assert done["slow"].status == "swapped" and second.status == "swapped"
    assert "waiting" in caplog.text
    assert _content() == _expected(stock_rows(10, 2))  # the waiter ran after the slow one
    skipper = RefreshJob(Stock, lambda: iter(stock_rows(3)))
    Stock._meta  # noqa: B018
    from IndexedRedis.dispatch import run_sync
    from IndexedRedis.flows.refresh import lease_flow

    assert run_sync(Stock, lambda ctx: lease_flow(ctx, "acquire", "someone-else", 5000)).held
    assert skipper.run().status == "busy"
    assert refresh_status(Stock)["lease_holder"] == "someone-else"
